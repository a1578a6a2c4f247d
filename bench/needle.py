"""Needle recall: facts planted at the start of a conversation 2, 5 and 10 times longer than
the context window, asked about at its end. Virtual context (turns paged out to recall memory,
the ones related to the question recalled by vector search, llmasos.storage.virtual_context)
against truncation (the newest turns that fit the same window), in the same run, on the same
default model, same greedy decoding, same window.

Two figures per length and method: recall@4 (the planted turn is in the prompt the model sees)
and answer accuracy (greedy continuation of "question ... answer opening" contains the fact).
The default model is a small base model, so accuracy measures copying from the prompt, not
reasoning.

    .venv/bin/python bench/needle.py
Writes bench/results/needle.json and .png.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from llmasos import Client
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.models.default import default_model_path
from llmasos.settings import Settings
from llmasos.storage.service import Storage, StorageConfig
from llmasos.storage.virtual_context import VirtualContext
from report import arguments

WINDOW = 512
LENGTHS = (2, 5, 10)
NAMES = ["Biscuit", "Pepper", "Juniper", "Marlow", "Tansy", "Quill", "Saffron", "Bramble"]
PLACES = ["Oslo", "Lisbon", "Quito", "Hanoi", "Tallinn", "Perth", "Accra", "Lima"]
SUBJECTS = ["the garden", "a soup recipe", "the football match", "a history book",
            "the weather", "a new song", "the museum", "a board game", "the train timetable",
            "a film"]  # fmt: skip


def facts(rng: random.Random) -> list[tuple[str, str, str, str]]:
    """(planted turn, question, answer opening, answer): ten facts of five kinds."""
    made = []
    for i in range(2):
        code, name, place = str(rng.randrange(1000, 9999)), rng.choice(NAMES), PLACES[i]
        level, hour = str(rng.randrange(2, 9)), f"{rng.randrange(5, 11)}:{rng.randrange(10, 59)}"
        made += [
            (f"My locker number at the {place} gym is {code}.",
             f"What is my locker number at the {place} gym?",
             f"Your locker number at the {place} gym is", code),
            (f"The dog I adopted in {place} is called {name}.",
             f"What is the dog I adopted in {place} called?",
             f"The dog you adopted in {place} is called", name),
            (f"In {place} I parked the car on level {level}.",
             f"On which level did I park the car in {place}?",
             f"In {place} you parked the car on level", level),
            (f"My train from {place} leaves at {hour}.", f"When does my train from {place} leave?",
             f"Your train from {place} leaves at", hour),
            (f"The door code of the {place} office is {code[::-1]}.",
             f"What is the door code of the {place} office?",
             f"The door code of the {place} office is", code[::-1]),
        ]  # fmt: skip
    return made


def filler(rng: random.Random, n: int) -> str:
    subject = rng.choice(SUBJECTS)
    return f"About {subject}: remark {n} is that it went well and we should do it again soon."


def run_length(client: Client, times: int, seed: int) -> dict:
    rng = random.Random(seed)
    planted = facts(rng)

    def count(text: str) -> int:
        return len(client.kernel.tokenize(text))

    context = VirtualContext(client.agent_memory(f"needle-{times}x"), count, WINDOW)
    logged = 0
    for fact in planted:
        logged += context.add("user", fact[0]).tokens
        logged += context.add("assistant", "Noted.").tokens
    n = 0
    while logged < times * WINDOW:
        logged += context.add("user" if n % 2 == 0 else "assistant", filler(rng, n)).tokens
        n += 1
    scores = {"paged": [0, 0], "truncated": [0, 0]}  # [recalled, answered]
    started = time.perf_counter()
    for turn, question, opening, expected in planted:
        paged = context.prompt(question)
        window = "Conversation:\n" + "".join(f"{t.line()}\n" for t in context.window)
        truncated = f"{window}user: {question}\nassistant:"
        for name, prompt in (("paged", paged), ("truncated", truncated)):
            assert count(prompt) <= WINDOW, (name, count(prompt))
            text = client.generate_text(f"{prompt} {opening}", max_tokens=8, temperature=0)
            scores[name][0] += turn in prompt
            scores[name][1] += expected in str(text)
    total = len(planted)
    return {
        "times_window": times,
        "conversation_tokens": logged,
        "turns": len(planted) * 2 + n,
        "paged_out_turns": context.paged_through,
        "facts": total,
        "recall_at_4": {k: v[0] / total for k, v in scores.items()},
        "answer_accuracy": {k: v[1] / total for k, v in scores.items()},
        "seconds_answering": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    args = arguments(__doc__, repeats=None).parse_args()
    model = default_model_path(Settings.from_environment().home)
    with tempfile.TemporaryDirectory() as folder:
        storage = Storage(StorageConfig(Path(folder)))
        with Client(model=str(model), storage=storage, context_length=1024) as client:
            rows = [run_length(client, times, seed=times) for times in LENGTHS]
    for row in rows:
        print(row)
    report = {
        **report_header("needle", __doc__.split("\n\n")[0], model),
        "window_tokens": WINDOW,
        "results": rows,
        "notes": [
            "recall_at_4: the planted turn is among the recalled turns in the prompt",
            "truncation keeps the newest turns that fit the window; it never holds a planted "
            "fact at these lengths, so its accuracy is what the model guesses",
        ],
    }
    write_report(args.out / "needle.json", report)
    groups = [f"{r['times_window']}x" for r in rows]
    bar_plot(
        args.out / "needle.png",
        groups=groups,
        series={
            "paged: recall@4": [r["recall_at_4"]["paged"] for r in rows],
            "paged: answered": [r["answer_accuracy"]["paged"] for r in rows],
            "truncated: answered": [r["answer_accuracy"]["truncated"] for r in rows],
        },
        title=f"Needle recall over a {WINDOW}-token window (ten planted facts)",
    )


if __name__ == "__main__":
    main()

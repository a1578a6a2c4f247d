"""Virtual context on the real model: a conversation five times longer than the context
window still answers questions about facts planted at its start, through paging and recall,
where truncating to the window cannot."""

from __future__ import annotations

import itertools

import pytest

from llmasos import Client
from llmasos.storage.service import Storage, StorageConfig
from llmasos.storage.virtual_context import VirtualContext

WINDOW = 512
FACTS = [  # (planted turn, question, the answer's opening, the answer)
    ("My locker number is 4172.", "What is my locker number?", "Your locker number is", "4172"),
    ("The name of my cat is Biscuit.", "What is the name of my cat?",
     "The name of your cat is", "Biscuit"),
    ("I parked the car on level 7 of the garage.",
     "On which level of the garage did I park the car?", "You parked the car on level", "7"),
    ("My flight to Oslo leaves at 6:45.", "When does my flight to Oslo leave?",
     "Your flight to Oslo leaves at", "6:45"),
    ("The wifi password at the cabin is falcon88.", "What is the wifi password at the cabin?",
     "The wifi password at the cabin is", "falcon88"),
]  # fmt: skip
TOPICS = ["the garden", "a recipe for soup", "the football match", "a history book",
          "the weather this week", "a new song", "the museum visit", "a board game"]  # fmt: skip


def filler(n: int) -> str:
    topic = TOPICS[n % len(TOPICS)]
    return f"Let us talk about {topic} for a while; remark number {n} is that it was pleasant."


@pytest.fixture(scope="module")
def client(model_path, tmp_path_factory):
    storage = Storage(StorageConfig(tmp_path_factory.mktemp("storage")))
    with Client(model=str(model_path), storage=storage, context_length=1024) as client:
        yield client


def tokens(client: Client, text: str) -> int:
    return len(client.kernel.tokenize(text))


def answer(client: Client, prompt: str) -> str:
    return str(client.generate_text(prompt, max_tokens=8, temperature=0))


def test_paging_and_recall_answer_what_truncation_forgot(client):
    memory = client.agent_memory("needle")
    context = VirtualContext(memory, lambda text: tokens(client, text), WINDOW)
    for planted, *_ in FACTS:
        context.add("user", planted)
        context.add("assistant", "Noted.")
    logged = sum(turn.tokens for turn in context.window)
    for n in itertools.count():
        if logged >= 5 * WINDOW:
            break
        logged += context.add("user" if n % 2 == 0 else "assistant", filler(n)).tokens
    assert sum(tokens(client, f"{i.role}: {i.text}\n") for i in memory.recall()) >= 5 * WINDOW
    assert context.paged_through > 2 * len(FACTS)  # every planted turn was paged out

    paged = truncated = recalled = 0
    for planted, question, opening, expected in FACTS:
        prompt = context.prompt(question)
        assert tokens(client, prompt) <= WINDOW
        recalled += planted in prompt
        paged += expected in answer(client, f"{prompt} {opening}")
        window_only = "Conversation:\n" + "".join(f"{t.line()}\n" for t in context.window)
        baseline = f"{window_only}user: {question}\nassistant: {opening}"
        assert planted not in baseline and tokens(client, baseline) <= WINDOW
        truncated += expected in answer(client, baseline)
    assert recalled >= 4  # recall@4 of the planted facts, over five
    assert paged >= 3
    assert paged > truncated


def test_a_conversation_picks_up_where_it_was(client, tmp_path):
    first = client.conversation("resumer", window_tokens=256, max_tokens=4)
    for n in range(40):
        first.context.add("user", filler(n))
    again = client.conversation("resumer", window_tokens=256, max_tokens=4)
    assert again.context.paged_through == first.context.paged_through > 0
    assert [t.seq for t in again.context.window] == [t.seq for t in first.context.window]
    reply = again.say("What did we talk about?")
    log = client.agent_memory("resumer").recall()
    assert log[-2].text == "What did we talk about?"
    assert log[-1].text == reply or reply == ""

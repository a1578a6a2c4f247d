"""The natural-language shell's accuracy: 44 fixed requests, none of them a prompt example,
each with the one command it should become, translated by `llmasos shell`'s prompt and
grammar (nlshell/commands.py) over a fixed world of objects, greedily, by every generative
model of the repository (here only the default base model: no better one is installed).

Per model: the share of requests turned into exactly the expected command, the share turned
into a valid command at all (the grammar's promise: it should be 1.0), accuracy by the access
the command needs, and seconds per request. In process, 2 threads.

    .venv/bin/python bench/shell.py
Writes bench/results/shell.json and .png.
"""

from __future__ import annotations

import time

from llmasos import Client
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.errors import InvalidRequestError
from llmasos.models.default import default_model_path
from llmasos.models.gguf_info import is_encoder
from llmasos.models.repository import Repository
from llmasos.nlshell.commands import Thing, World, grammar, parse, prompt
from llmasos.settings import Settings
from report import arguments

WORLD = World(
    processes=[Thing("1042", "running, priority 0, owner ada"),
               Thing("1043", "suspended, priority 5, owner ada")],
    agents=[Thing("1050", "researcher")],
    jobs=[Thing("task-5f3a", "running, running 310 s"), Thing("task-9b1c", "suspended")],
    models=[Thing("gemma3-270m:q4_k_m"), Thing("all-minilm-l6-v2:f32")],
    keys=[Thing("a1b2c3", "bob")],
)  # fmt: skip
REQUESTS = [
    ("what processes are there", "ps"),
    ("list the processes", "ps"),
    ("show all processes including the finished ones", "ps --all"),
    ("ps everything, even dead ones", "ps --all"),
    ("kill 1043", "kill 1043"),
    ("terminate process 1042", "kill 1042"),
    ("get rid of process 1043", "kill 1043"),
    ("end the suspended process", "kill 1043"),
    ("list the models in the repository", "models list"),
    ("what models can I use", "models list"),
    ("which models are loaded", "models ps"),
    ("show the models in memory", "models ps"),
    ("details of gemma3-270m:q4_k_m", "models show gemma3-270m:q4_k_m"),
    ("describe the embedding model all-minilm-l6-v2:f32", "models show all-minilm-l6-v2:f32"),
    ("what agents are there", "agents ps"),
    ("show my agents", "agents ps"),
    ("kill agent 1050", "agents kill 1050"),
    ("stop the researcher agent", "agents kill 1050"),
    ("list my jobs", "jobs ls"),
    ("show the training jobs", "jobs ls"),
    ("status of task-9b1c", "jobs status task-9b1c"),
    ("how far is job task-5f3a", "jobs status task-5f3a"),
    ("loss of task-5f3a step by step", "jobs logs task-5f3a"),
    ("show the logs of job task-9b1c", "jobs logs task-9b1c"),
    ("cancel task-9b1c", "jobs cancel task-9b1c"),
    ("kill the longest running job", "jobs cancel task-5f3a"),
    ("suspend task-5f3a", "jobs suspend task-5f3a"),
    ("pause the running job", "jobs suspend task-5f3a"),
    ("resume task-9b1c", "jobs resume task-9b1c"),
    ("continue the suspended job", "jobs resume task-9b1c"),
    ("list my files", "fs ls"),
    ("show the files in storage", "fs ls"),
    ("how many bytes do I store", "fs usage"),
    ("disk usage", "fs usage"),
    ("show me the file report.txt", "fs cat report.txt"),
    ("cat notes/plan.md", "fs cat notes/plan.md"),
    ("history of report.txt", "fs log report.txt"),
    ("remove the file tmp/scratch.txt", "fs rm tmp/scratch.txt"),
    ("delete report.txt", "fs rm report.txt"),
    ('continue the text "Once upon a time"', 'run "Once upon a time"'),
    ("list the api keys", "keys list"),
    ("revoke key a1b2c3", "keys revoke a1b2c3"),
    ("check the audit log", "audit verify"),
    ("verify the audit trail", "audit verify"),
]


def generative_models(repository: Repository) -> list[str]:
    return [
        m.name for m in repository.list()
        if m.format == "gguf" and not is_encoder(m.architecture)
    ]  # fmt: skip


def evaluate(model: str) -> dict[str, object]:
    rules = grammar(WORLD)
    rows, took = [], 0.0
    with Client(model=model, n_threads=2) as client:
        for said, expected in REQUESTS:
            began = time.perf_counter()
            text = client.generate_text(
                prompt(said, WORLD), grammar=rules, max_tokens=64, temperature=0
            )
            took += time.perf_counter() - began
            try:
                got, valid = str(parse(text, WORLD)), True
            except InvalidRequestError:
                got, valid = text, False
            access = parse(expected, WORLD).verb.access.value
            rows.append({"request": said, "expected": expected, "got": got, "valid": valid,
                         "access": access})  # fmt: skip
    by_access = {
        access: sum(r["got"] == r["expected"] for r in group) / len(group)
        for access in ("read", "write", "admin")
        if (group := [r for r in rows if r["access"] == access])
    }
    return {
        "accuracy": sum(r["got"] == r["expected"] for r in rows) / len(rows),
        "valid": sum(r["valid"] for r in rows) / len(rows),
        "accuracy_by_access": by_access,
        "seconds_per_request": round(took / len(rows), 3),
        "requests": rows,
    }


def main() -> None:
    args = arguments(__doc__, repeats=None).parse_args()
    home = Settings.from_environment().home
    model_path = default_model_path(home)
    report = report_header("shell", __doc__.split("\n\n")[1], model_path)
    models = generative_models(Repository(home / "models"))
    report["models"] = {model: evaluate(model) for model in models}
    write_report(args.out / "shell.json", report)
    bar_plot(
        args.out / "shell.png",
        groups=list(report["models"]),
        series={
            "exact command": [r["accuracy"] for r in report["models"].values()],
            "valid command": [r["valid"] for r in report["models"].values()],
        },
        title=f"llmasos shell on {len(REQUESTS)} requests (share; higher is better)",
    )
    for model, result in report["models"].items():
        print(f"{model}: accuracy {result['accuracy']:.2f}, valid {result['valid']:.2f}")


if __name__ == "__main__":
    main()

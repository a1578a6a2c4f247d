"""The job SDK's types and the checks on a job's data, before any training starts."""

from __future__ import annotations

import json

import pytest

from llmasos import DP, TaskState, TaskStatus, TrainingTask
from llmasos.errors import InvalidRequestError
from llmasos.jobs.job_files import TaskFiles
from llmasos.jobs.job_manager import fair_order
from llmasos.jobs.task_data import read_records


def lines(*records: object) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"method": "full"}, "method"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"batch_size": 65}, "batch_size"),
        ({"output": "Bad Name"}, "output"),
        ({"epochs": 10**400}, "epochs"),  # compared as it is, never turned into a float
        ({"batch_size": 32, "max_tokens_per_sample": 256}, "batch_size"),
        ({"privacy": {"epsilon": 8}}, "privacy"),  # a dict is not a DP in Python
        ({"max_tokens_per_sample": 5000}, "max_tokens_per_sample"),
    ],
)
def test_a_bad_task_field_is_refused_naming_it(fields, field):
    with pytest.raises(InvalidRequestError) as caught:
        TrainingTask(model="m", data="d.jsonl", **fields)
    assert caught.value.field == field


def test_dp_fields_are_checked_and_json_round_trips():
    with pytest.raises(InvalidRequestError, match=r"privacy\.epsilon"):
        DP(epsilon=0)
    with pytest.raises(InvalidRequestError, match=r"privacy\.delta"):
        DP(epsilon=1, delta=0.5)
    task = TrainingTask(model="m", data="d", privacy=DP(epsilon=8, noise_multiplier=1.1))
    assert TrainingTask.from_json(json.loads(json.dumps(task.to_json()))) == task
    with pytest.raises(InvalidRequestError, match=r"privacy\.sigma: unknown"):
        TrainingTask.from_json({"model": "m", "data": "d", "privacy": {"epsilon": 1, "sigma": 2}})
    with pytest.raises(InvalidRequestError, match="colour: unknown field"):
        TrainingTask.from_json({"model": "m", "data": "d", "colour": "red"})
    with pytest.raises(InvalidRequestError, match="model: is required"):
        TrainingTask.from_json({"data": "d"})


def test_text_and_chat_records_are_read():
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    records = read_records(lines({"text": "one"}, "", chat))
    assert [r.line for r in records] == [1, 3]
    assert records[0].text == "one"
    assert records[1].messages == (("user", "hi"), ("assistant", "yo"))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "line 2: not a JSON object"),
        ('{"text": NaN}', "line 2: not a JSON object"),
        ("[1, 2]", "line 2: not a JSON object"),
        ({"text": ""}, "line 2: text must be a non-empty string"),
        ({"text": "a", "label": 1}, "line 2: a record is"),
        ({"prompt": "a"}, "line 2: a record is"),
        ({"messages": []}, "line 2: messages must be a list"),
        ({"messages": [{"role": "bot", "content": "x"}]}, r"line 2: messages\[0\].role"),
        ({"messages": [{"role": "user", "content": 3}]}, r"line 2: messages\[0\].content"),
        ({"messages": [{"role": "user", "content": "q"}]}, "line 2: messages: the last"),
    ],
)
def test_a_bad_record_is_refused_naming_its_line_and_field(bad, message):
    with pytest.raises(InvalidRequestError, match=message) as caught:
        read_records(lines({"text": "fine"}, bad))
    assert caught.value.field == "data"


def test_an_empty_or_non_utf8_file_is_refused():
    with pytest.raises(InvalidRequestError, match="holds no records"):
        read_records(b"\n\n")
    with pytest.raises(InvalidRequestError, match="not UTF-8"):
        read_records(b'{"text": "\xff"}\n')


def test_status_updates_under_the_lock_and_the_log_is_cut_back(tmp_path):
    files = TaskFiles(tmp_path / "task-0123456789abcdef")
    status = TaskStatus("task-0123456789abcdef", TaskState.QUEUED, "ann", 7, -10, "m:l", "lora")
    files.create(TrainingTask(model="m", data="d"), b'{"text": "x"}\n', status)
    files.update(state=TaskState.RUNNING, step=3)
    assert (files.status().state, files.status().step) == (TaskState.RUNNING, 3)
    for step in range(1, 6):
        files.log_step({"step": step, "epoch": 1, "loss": 1.0 / step, "epsilon": None})
    assert [e["step"] for e in files.log(after_step=2)] == [3, 4, 5]
    files.cut_log(3)  # a killed worker's steps past its checkpoint are done again
    assert [e["step"] for e in files.log()] == [1, 2, 3]


def test_a_stop_request_is_never_weakened_and_is_used_up_with_the_final_state(tmp_path):
    files = TaskFiles(tmp_path / "task-00000000000000aa")
    status = TaskStatus("task-00000000000000aa", TaskState.RUNNING, "ann", 1, -10, "m:l", "lora")
    files.create(TrainingTask(model="m", data="d"), b'{"text": "x"}\n', status)
    files.ask("suspend")
    files.ask("cancel")
    files.ask("shutdown")  # the OS stopping does not turn a cancel into "run again later"
    assert files.asked() == "cancel"
    assert files.end_as_asked("shutdown") is TaskState.CANCELLED
    assert files.asked() is None and files.status().finished_at is not None
    assert files.update(only_from=(TaskState.QUEUED,), state=TaskState.RUNNING) is None
    assert files.status().state is TaskState.CANCELLED  # a stale change did not land
    assert str(files.secret()) not in files.status_path.read_text()  # never shown


def test_queued_jobs_start_owners_in_turn_each_owners_in_submission_order():
    def job(n: int, owner: str, state: TaskState, started: float | None = None) -> TaskStatus:
        status = TaskStatus(f"task-{n:016x}", state, owner, n, -10, "m", "lora")
        status.created_at, status.started_at = float(n), started
        return status

    jobs = [
        job(1, "ann", TaskState.SUCCEEDED, started=10.0),
        job(2, "ann", TaskState.RUNNING, started=20.0),
        job(3, "ann", TaskState.QUEUED),
        job(4, "ann", TaskState.QUEUED),
        job(5, "bob", TaskState.SUCCEEDED, started=15.0),
        job(6, "bob", TaskState.QUEUED),
        job(7, "cy", TaskState.QUEUED),
        job(8, "cy", TaskState.SUSPENDED),
    ]
    assert [s.pid for s in fair_order(jobs)] == [7, 6, 3, 4]

"""A job's data at rest under a master key: its data, secret seed, checkpoints and token cache
are sealed under the owner's key, bound to their place, and never opened when altered, moved
or read without the key."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import pytest

from llmasos import TaskState, TaskStatus, TrainingTask
from llmasos.errors import IntegrityError
from llmasos.jobs.job_files import Seal, TaskFiles
from llmasos.jobs.token_cache import cache_key, tokenised
from llmasos.security.crypto import Sealer

DATA = b'{"text": "the zorblat of Quentin is vermilion"}\n'
SEALER = Sealer(os.urandom(32))


def sealed_job(root, task_id: str = "task-00000000000000aa", owner: str = "ann") -> TaskFiles:
    files = TaskFiles(root / task_id, SEALER)
    status = TaskStatus(task_id, TaskState.QUEUED, owner, 1, -10, "m:l", "lora")
    files.create(TrainingTask(model="m", data="d"), DATA, status)
    return files


def test_the_data_secret_and_checkpoints_are_sealed_and_read_back(tmp_path):
    files = sealed_job(tmp_path)
    path = files.write_checkpoint(4, b"weights of step 4: vermilion")
    for raw in (files.data_path, files.folder / "secret", path):
        assert b"vermilion" not in raw.read_bytes() and raw.read_bytes().startswith(b"LS1")
    assert files.data() == DATA
    assert 0 <= files.secret() < 2**63
    assert files.read_checkpoint(path) == b"weights of step 4: vermilion"
    assert b"vermilion" not in b"".join(
        p.read_bytes() for p in files.folder.rglob("*") if p.is_file()
    )


def test_a_record_moved_altered_or_read_without_the_key_is_refused(tmp_path):
    files = sealed_job(tmp_path)
    other = sealed_job(tmp_path, "task-00000000000000bb")
    shutil.copy(files.data_path, other.data_path)  # same owner, another job
    with pytest.raises(IntegrityError):
        other.data()
    step_4 = files.write_checkpoint(4, b"state")
    step_6 = files.checkpoint / "step-000000006.pt"
    shutil.copy(step_4, step_6)  # passed off as a later step
    with pytest.raises(IntegrityError):
        files.read_checkpoint(step_6)
    record = bytearray(files.data_path.read_bytes())
    record[-1] ^= 1
    files.data_path.write_bytes(bytes(record))
    with pytest.raises(IntegrityError):
        files.data()
    with pytest.raises(IntegrityError, match="LLMASOS_MASTER_KEY"):
        TaskFiles(other.folder).secret()  # the OS restarted without its master key
    with pytest.raises(IntegrityError):
        TaskFiles(other.folder, Sealer(os.urandom(32))).secret()  # or with another one


class Tokenizer:
    """Splits on spaces: token ids are word lengths (the cache's logic, not a model's)."""

    def __call__(self, text: str) -> SimpleNamespace:
        return SimpleNamespace(input_ids=[len(word) for word in text.split()])


def test_the_token_cache_is_sealed_named_by_a_keyed_digest_and_kept_per_owner(tmp_path):
    cache = tmp_path / "cache"
    ann, bob = Seal(SEALER, "ann"), Seal(SEALER, "bob")
    samples, cached = tokenised(DATA, Tokenizer(), "tok", 64, cache, ann)
    assert ([s.ids for s in samples], cached) == ([[3, 7, 2, 7, 2, 9]], False)
    (entry,) = cache.iterdir()
    assert cache_key(DATA, "tok", 64) not in entry.name  # a guess of the data can't be confirmed
    assert entry.read_bytes().startswith(b"LS1") and b"[3, 7" not in entry.read_bytes()
    assert tokenised(DATA, Tokenizer(), "tok", 64, cache, ann) == (samples, True)
    assert tokenised(DATA, Tokenizer(), "tok", 64, cache, bob)[1] is False  # bob's own entry
    plain = Seal(None, "ann")
    assert tokenised(DATA, Tokenizer(), "tok", 64, cache, plain)[1] is False
    assert (cache / f"{cache_key(DATA, 'tok', 64)}.json").read_bytes().startswith(b"[[[3, 7")

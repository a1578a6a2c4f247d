"""A training job's worker process: `python -m llmasos.jobs.worker JOB_FOLDER`.

It trains, writes its status and step log into the job's folder, checkpoints every
`checkpoint_every` steps, and when done registers the result in the model repository. On SIGTERM
it finishes the step under way, checkpoints, and ends as the manager asked (suspended, cancelled,
or queued again when the OS shuts down). Killed outright, it loses at most the steps since its
last checkpoint, which the resumed job does again (their log lines are dropped first).

The OS's master key, when it has one, comes on standard input (never in the environment or
the command line); the job's data, secret seed, checkpoints and token cache are sealed with it.

A background job (priority < 0) runs under SCHED_IDLE: the CPU goes to it only when the engine
and everything else on the machine leave it idle.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from llmasos.errors import ClusterUnavailableError, InvalidRequestError, LLMasOSError
from llmasos.jobs.checkpoints import restore, save
from llmasos.jobs.hf_model import hf_copy
from llmasos.jobs.job_files import ASK_SHUTDOWN, TaskFiles
from llmasos.jobs.lora_gguf import write_lora_gguf
from llmasos.jobs.pool_address import PoolAddress
from llmasos.jobs.privacy_budget import noise_for
from llmasos.jobs.task_data import Record
from llmasos.jobs.tasks import TaskState, TrainingTask
from llmasos.jobs.token_cache import Sample, to_sample, tokenised
from llmasos.jobs.trainer import LoraTrainer, Plan
from llmasos.models.manifest import full_name
from llmasos.models.repository import Repository
from llmasos.security.crypto import Sealer
from llmasos.settings import Settings

logger = logging.getLogger("llmasos.jobs.worker")
_PR_SET_PDEATHSIG = 1


def run_in_background(priority: int) -> None:
    """Give a background job the CPU only when nothing else wants it (threads started later,
    torch's among them, inherit this)."""
    if priority < 0 and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    os.nice(19 if priority < 0 else 5)


def die_with(parent: int) -> None:
    """Get SIGKILL when the manager that started this worker goes (kill -9 of the OS): an orphan
    must not go on with a job the restarted OS resumes."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it went before the line above
        os._exit(1)


def main(argv: list[str]) -> int:
    """argv: the job folder, the manager's pid; stdin: the master key's bytes, or nothing."""
    die_with(int(argv[2]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the manager says when to stop
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    master_key = sys.stdin.buffer.read()
    files = TaskFiles(Path(argv[1]), Sealer(master_key) if master_key else None)
    stop = Stop()
    signal.signal(signal.SIGTERM, stop.handle)
    task = files.task()
    run_in_background(task.priority)
    try:
        train(files, task, stop)
    except StopRequested:  # before the first step: nothing to checkpoint
        _stop(files, None, 0)
    except LLMasOSError as error:
        _fail(files, str(error))
    except Exception as error:  # the job failed; its status says how, the log has the trace
        logger.exception("job %s failed", files.task_id)
        _fail(files, f"{type(error).__name__}: {error}")
    return 0


class StopRequested(BaseException):  # not swallowed by a library's `except Exception`
    """SIGTERM before training started: the setup (loading, converting) is given up."""


class Stop:
    """SIGTERM: during the setup it stops the worker at once; once steps run, after the step
    under way (the loop checks `is_set`)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.at_once = True

    def handle(self, *_: object) -> None:
        self._event.set()
        if self.at_once:
            raise StopRequested()

    def is_set(self) -> bool:
        return self._event.is_set()

    def stepping(self) -> None:
        """Steps run from now on: a stop waits for the step under way."""
        self.at_once = False
        if self._event.is_set():
            raise StopRequested()


def _fail(files: TaskFiles, error: str) -> None:
    files.update(state=TaskState.FAILED, error=error, finished_at=time.time(), eta_s=None)


def across_the_pool(
    files: TaskFiles, tokenizer: Any, limit: int
) -> Callable[[list[Record]], list[Sample]] | None:
    """On a cluster replica, records are tokenised a partition per replica of its pool (the
    status says how many each did); elsewhere (None) here, in one piece. Ray is imported only
    then (the cluster extra is optional); a pool that cannot be reached leaves it to here."""
    pool = PoolAddress.from_environment()
    if pool is None:
        return None

    def tokenise_all(records: list[Record]) -> list[Sample]:
        import ray

        from llmasos.jobs.partitions import connect, tokenise_across

        files.update(message="tokenising the data across the cluster's replicas")
        try:
            replicas = connect(pool)
            gathered = tokenise_across(records, tokenizer, limit, replicas) if replicas else None
        except (ConnectionError, ClusterUnavailableError, ray.exceptions.RaySystemError) as error:
            logger.warning("tokenising here: the pool did not answer (%s)", error)
            gathered = None
        finally:
            ray.shutdown()
        if gathered is None:
            return [to_sample(r, tokenizer, limit) for r in records]
        files.update(data_split=gathered.by_replica)
        return gathered.samples

    return tokenise_all


def train(files: TaskFiles, task: TrainingTask, stop: Stop) -> None:
    settings = Settings.from_environment()
    repository = Repository(settings.home / "models")
    files.update(message="preparing the base model (converted once, then kept)")
    hf_dir = hf_copy(repository, task.model)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    cache = settings.home / "jobs" / "cache"
    key = f"{files.status().owner}\0{hf_dir.name}"  # one owner's cache tells nothing of another's
    limit = task.max_tokens_per_sample
    across = across_the_pool(files, tokenizer, limit)
    samples, cached = tokenised(files.data(), tokenizer, key, limit, cache, files.seal(), across)
    secret = files.secret()
    plan = Plan(len(samples), task, secret)
    trainer = LoraTrainer(hf_dir, task, plan, noise_for(task, plan.size), secret)
    done = restore(files, trainer)
    stop.stepping()
    files.cut_log(done)
    files.update(
        message=None,
        data_cached=cached,
        samples=len(samples),
        total_steps=plan.total_steps,
        step=done,
        checkpoint_step=done,
        started_at=files.status().started_at or time.time(),
    )
    began, first = time.monotonic(), done
    stopped_early = None
    for step in range(done + 1, plan.total_steps + 1):
        if stop.is_set():
            return _stop(files, trainer, step - 1)
        if _over_budget(task, trainer, step):
            if step == 1:
                raise InvalidRequestError(
                    "privacy.epsilon", "a single step would spend more; raise it or the noise"
                )
            stopped_early = f"stopped at the privacy budget after step {step - 1}"
            break
        loss = trainer.step([samples[i] for i in plan.batch(step)])
        delta = task.privacy.delta if task.privacy else 0.0
        epsilon = trainer.epsilon(delta)
        files.log_step(
            {"step": step, "epoch": plan.epoch_of(step), "loss": loss, "epsilon": epsilon}
        )
        per_step = (time.monotonic() - began) / (step - first)
        changes = {"step": step, "epoch": plan.epoch_of(step), "epsilon": epsilon}
        if loss is not None:
            changes["loss"] = loss
        files.update(
            **changes, progress=step / plan.total_steps, eta_s=per_step * (plan.total_steps - step)
        )
        if step % task.checkpoint_every == 0:
            save(files, trainer, step)
    _finish(files, task, trainer, repository, stopped_early)


def _over_budget(task: TrainingTask, trainer: LoraTrainer, step: int) -> bool:
    """With a given noise multiplier, would step `step` spend more than the budget?"""
    privacy = task.privacy
    if privacy is None or privacy.noise_multiplier is None:
        return False
    return trainer.epsilon_after(step, privacy.delta) > privacy.epsilon


def _stop(files: TaskFiles, trainer: LoraTrainer | None, step: int) -> None:
    if trainer is not None:
        save(files, trainer, step)
    if files.end_as_asked(ASK_SHUTDOWN) is TaskState.CANCELLED:
        files.discard_work()


def _finish(
    files: TaskFiles,
    task: TrainingTask,
    trainer: LoraTrainer,
    repository: Repository,
    stopped_early: str | None,
) -> None:
    files.update(message="converting the adapter to GGUF and registering it")
    trainer.save_adapter(files.adapter)
    base = repository.show(task.model)
    write_lora_gguf(files.adapter, files.adapter_gguf, architecture=base.architecture)
    name = task.output or f"{files.task_id}:lora"  # the manager always names it
    if name not in repository or repository.show(name).source != str(files.adapter_gguf):
        owner = files.status().model_owner
        repository.import_adapter(files.adapter_gguf, name, base=base.name, owner=owner)
    # else this job registered it before it was killed: that part is done
    files.discard_work()
    files.update(
        state=TaskState.SUCCEEDED,
        output_model=full_name(name),
        progress=1.0,
        eta_s=0.0,
        finished_at=time.time(),
        message=stopped_early,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv))

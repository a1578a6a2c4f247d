"""A private training job's budget in numbers (opacus's RDP accountant): the noise multiplier
DP-SGD adds (the task's own, or the one that spends exactly its epsilon over the planned steps),
the privacy a number of steps spends at it, and a check made when the job is submitted, so that
a budget no step fits is refused at once instead of failing the job later.

opacus (the `train` extra, with torch) is imported only when a function here is called; the
server checks a budget in a short-lived interpreter (check_budget_apart), so that neither
stays in its memory.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import warnings
from dataclasses import dataclass

from llmasos.errors import UnprocessableError
from llmasos.jobs.tasks import TrainingTask

CHECK_TIMEOUT_S = 120.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanSize:
    """How a job on `samples` records is cut into steps."""

    batch_size: int
    steps_per_epoch: int
    total_steps: int
    sample_rate: float  # a record's chance to join a step (DP's Poisson sampling)

    @classmethod
    def of(cls, samples: int, task: TrainingTask) -> PlanSize:
        batch = min(task.batch_size, samples)
        per_epoch = math.ceil(samples / batch)
        return cls(batch, per_epoch, per_epoch * task.epochs, batch / samples)


def noise_for(task: TrainingTask, size: PlanSize) -> float | None:
    """The DP noise multiplier (None without DP); UnprocessableError naming privacy.epsilon when
    no amount of noise keeps the planned steps within it."""
    if task.privacy is None:
        return None
    if task.privacy.noise_multiplier is not None:
        return task.privacy.noise_multiplier
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "optimal order is the largest alpha"
            return float(
                get_noise_multiplier(
                    target_epsilon=task.privacy.epsilon,
                    target_delta=task.privacy.delta,
                    sample_rate=size.sample_rate,
                    steps=size.total_steps,
                    accountant="rdp",
                )
            )
    except ValueError:  # opacus: "the privacy budget is too low"
        raise UnprocessableError(
            "privacy.epsilon",
            f"{task.privacy.epsilon} is too small for {size.total_steps} steps at a sampling "
            f"rate of {size.sample_rate:.3g} and delta {task.privacy.delta}; raise epsilon, "
            "or train on more records or for fewer epochs",
        ) from None


def epsilon_after(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """The privacy that `steps` steps at `noise_multiplier` spend in all."""
    from opacus.accountants import RDPAccountant

    probe = RDPAccountant()
    probe.history = [(noise_multiplier, sample_rate, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(probe.get_epsilon(delta))


def check_budget(task: TrainingTask, samples: int) -> None:
    """UnprocessableError naming privacy.epsilon when the budget cannot pay for the job's first
    step. Nothing to check without DP; nothing checked where opacus is not installed (the
    worker then says what to install)."""
    if task.privacy is None or samples < 1:
        return
    try:
        import opacus  # noqa: F401
    except ImportError:
        return
    size = PlanSize.of(samples, task)
    noise = noise_for(task, size)
    assert noise is not None
    first = epsilon_after(noise, size.sample_rate, 1, task.privacy.delta)
    if first > task.privacy.epsilon:
        raise UnprocessableError(
            "privacy.epsilon",
            f"one step at noise_multiplier {noise} spends {first:.3g}, more than the budget of "
            f"{task.privacy.epsilon}; raise epsilon or the noise",
        )


def check_budget_apart(task: TrainingTask, samples: int, env: dict[str, str]) -> None:
    """check_budget run by `python -m llmasos.jobs.privacy_budget` with environment `env`; a
    check that cannot run is left to the job's worker."""
    if task.privacy is None:
        return
    request = json.dumps({"task": task.to_json(), "samples": samples})
    command = [sys.executable, "-m", "llmasos.jobs.privacy_budget"]
    try:
        done = subprocess.run(
            command, input=request, capture_output=True, text=True, env=env,
            timeout=CHECK_TIMEOUT_S,
        )  # fmt: skip
        answer = json.loads(done.stdout) if done.returncode == 0 else {}
    except (subprocess.TimeoutExpired, OSError, ValueError) as error:
        logger.warning("the privacy budget check did not run: %s", error)
        return
    if answer.get("field"):
        raise UnprocessableError(answer["field"], answer["reason"])


def _main() -> None:
    """Read {"task", "samples"} on stdin; print {} or the refusal's {"field", "reason"}."""
    request = json.loads(sys.stdin.read())
    try:
        check_budget(TrainingTask.from_json(request["task"]), int(request["samples"]))
    except UnprocessableError as error:
        print(json.dumps({"field": error.field, "reason": error.reason}))
        return
    print("{}")


if __name__ == "__main__":
    _main()

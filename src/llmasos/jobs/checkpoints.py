"""A job's checkpoints: the trainer's state after step N, in checkpoint/step-N.pt, each written
atomically (sealed with the job's data); only the newest is kept. Restoring reads the newest
one that loads."""

from __future__ import annotations

import contextlib
import io
import logging

import torch

from llmasos.jobs.job_files import TaskFiles
from llmasos.jobs.trainer import LoraTrainer

logger = logging.getLogger(__name__)


def save(files: TaskFiles, trainer: LoraTrainer, step: int) -> None:
    buffer = io.BytesIO()
    torch.save({"step": step, **trainer.state()}, buffer)
    path = files.write_checkpoint(step, buffer.getvalue())
    for older in files.checkpoint.glob("step-*.pt"):
        if older != path:
            older.unlink(missing_ok=True)
    files.update(checkpoint_step=step)


def restore(files: TaskFiles, trainer: LoraTrainer) -> int:
    """Load the newest checkpoint into `trainer`; the step it holds (0 without one)."""
    for path in sorted(files.checkpoint.glob("step-*.pt"), reverse=True):
        with contextlib.suppress(Exception):  # a damaged file: try the one before it
            state = torch.load(io.BytesIO(files.read_checkpoint(path)), weights_only=True)
            trainer.load_state(state, state["step"])
            return int(state["step"])
        logger.warning("checkpoint %s does not load; trying an older one", path)
    return 0

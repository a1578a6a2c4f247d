"""LoRA fine-tuning with peft on a Hugging Face copy of a repository model, optionally with DP-SGD
(opacus: per-sample gradients clipped, Gaussian noise, an RDP accountant).

Only the job worker imports this module (it loads torch). Which samples a step takes depends only
on the seed and the step number (Plan), so a job resumed from a checkpoint at step s goes on with
exactly the batches it would have taken: no sample is seen twice in an epoch, no step is redone.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from transformers import AutoModelForCausalLM

from llmasos.jobs.privacy_budget import PlanSize, epsilon_after
from llmasos.jobs.tasks import TrainingTask
from llmasos.jobs.token_cache import Sample

IGNORED = -100  # label of a token the loss leaves out (padding, a chat record's prompt)
LORA_TARGETS = ["q_proj", "v_proj"]


class Plan:
    """Which samples each step takes. Without DP: a shuffled pass per epoch, `batch_size` a step.
    With DP: Poisson sampling (each sample joins a step with probability batch_size / n), which
    is what the privacy accountant assumes, from the job's secret seed: whoever knows the
    task's public seed must not learn which records a step took."""

    def __init__(self, samples: int, task: TrainingTask, secret: int = 0) -> None:
        self.samples = samples
        self.size = size = PlanSize.of(samples, task)
        self.batch_size = size.batch_size
        self.poisson = task.privacy is not None
        self.seed = secret if self.poisson else task.seed
        self.steps_per_epoch = size.steps_per_epoch
        self.total_steps = size.total_steps
        self.sample_rate = size.sample_rate

    def epoch_of(self, step: int) -> int:
        return (step - 1) // self.steps_per_epoch + 1

    def batch(self, step: int) -> list[int]:
        """The sample indices of `step` (1-based)."""
        if self.poisson:
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + step) % 2**63)
            chosen = torch.rand(self.samples, generator=generator) < self.sample_rate
            return chosen.nonzero().flatten().tolist()
        order = list(range(self.samples))
        random.Random(self.seed * 7919 + self.epoch_of(step)).shuffle(order)
        k = (step - 1) % self.steps_per_epoch
        return order[k * self.batch_size : (k + 1) * self.batch_size]


class LoraTrainer:
    """A peft LoRA over the model in `hf_dir`; with `noise_multiplier`, trained by DP-SGD."""

    def __init__(
        self,
        hf_dir: Path,
        task: TrainingTask,
        plan: Plan,
        noise_multiplier: float | None,
        secret: int = 0,
    ) -> None:
        torch.manual_seed(task.seed)
        self.noise = torch.Generator().manual_seed(secret)  # DP noise: from the secret seed
        base = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
        config = LoraConfig(
            r=task.lora_rank,
            lora_alpha=2 * task.lora_rank,
            target_modules=LORA_TARGETS,
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(base, config)
        self.pad_id = base.config.pad_token_id or 0
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=task.learning_rate)
        self.module: Any = self.model
        self.noise_multiplier = noise_multiplier
        self.plan = plan
        self.accountant = None
        if noise_multiplier is not None:
            self._make_private(task, noise_multiplier)

    def _make_private(self, task: TrainingTask, noise_multiplier: float) -> None:
        from opacus import GradSampleModule
        from opacus.accountants import RDPAccountant
        from opacus.optimizers import DPOptimizer

        assert task.privacy is not None
        self.module = GradSampleModule(self.model, loss_reduction="mean")
        self.optimizer = DPOptimizer(
            self.optimizer,
            noise_multiplier=noise_multiplier,
            max_grad_norm=task.privacy.max_grad_norm,
            expected_batch_size=self.plan.batch_size,
            loss_reduction="mean",
            generator=self.noise,
        )
        self.accountant = RDPAccountant()

    def step(self, batch: list[Sample]) -> float | None:
        """One optimiser step on `batch`; its mean loss (None for an empty Poisson batch: with
        DP its step still adds the noise, as the accountant counts it)."""
        self.model.train()
        loss = None
        if not batch and self.accountant is not None:
            for p in self.model.parameters():
                if p.requires_grad:
                    p.grad_sample = torch.zeros((0, *p.shape))
            self.optimizer.step()
        elif batch:
            ids, mask, labels = self._pad(batch)
            logits = self.module(input_ids=ids, attention_mask=mask).logits[:, :-1]
            targets = labels[:, 1:]
            tokens = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                targets.reshape(-1),
                ignore_index=IGNORED,
                reduction="none",
            ).view(targets.shape)
            counted = (targets != IGNORED).sum(dim=1).clamp(min=1)
            per_sample = tokens.sum(dim=1) / counted
            per_sample.mean().backward()
            self.optimizer.step()
            loss = float(per_sample.mean().detach())
        self.optimizer.zero_grad(set_to_none=True)
        if self.accountant is not None and self.noise_multiplier is not None:
            self.accountant.step(
                noise_multiplier=self.noise_multiplier, sample_rate=self.plan.sample_rate
            )
        return loss

    def _pad(self, batch: list[Sample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(s.ids) for s in batch)  # padded per batch, not to a fixed length
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORED, dtype=torch.long)
        for row, sample in enumerate(batch):
            n = len(sample.ids)
            ids[row, :n] = torch.tensor(sample.ids)
            mask[row, :n] = 1
            labels[row, sample.prompt_tokens : n] = ids[row, sample.prompt_tokens : n]
        return ids, mask, labels

    def epsilon(self, delta: float) -> float | None:
        """The privacy spent so far (None without DP)."""
        if self.accountant is None or not self.accountant.history:
            return None if self.accountant is None else 0.0
        return float(self.accountant.get_epsilon(delta))

    def epsilon_after(self, steps: int, delta: float) -> float:
        """The privacy `steps` steps in all would spend."""
        assert self.noise_multiplier is not None
        return epsilon_after(self.noise_multiplier, self.plan.sample_rate, steps, delta)

    # -- checkpoints ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        optimizer = getattr(self.optimizer, "original_optimizer", self.optimizer)
        return {
            "lora": get_peft_model_state_dict(self.model),
            "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "noise": self.noise.get_state(),
        }

    def load_state(self, state: dict[str, Any], steps_done: int) -> None:
        set_peft_model_state_dict(self.model, state["lora"])
        optimizer = getattr(self.optimizer, "original_optimizer", self.optimizer)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        self.noise.set_state(state["noise"])
        if self.accountant is not None and steps_done:
            self.accountant.history = [(self.noise_multiplier, self.plan.sample_rate, steps_done)]

    def save_adapter(self, folder: Path) -> None:
        self.model.save_pretrained(folder)

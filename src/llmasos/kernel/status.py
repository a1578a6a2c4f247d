"""A kernel's status for dashboards (`llmasos top`, GET /v1/stats), read from its books."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from llmasos.kernel.stats import KernelStatus

if TYPE_CHECKING:
    from llmasos.kernel.kernel import Kernel


def kernel_status(kernel: Kernel) -> KernelStatus:
    processes = kernel.processes()
    memory = kernel.memory.usage()
    info = kernel.engine.info
    return KernelStatus(
        model=info.model_name,
        policy=kernel.config.policy,
        uptime_s=round(time.monotonic() - kernel.stats.started_at, 3),
        generated_tokens=kernel.stats.generated_tokens,
        prompt_tokens=kernel.stats.prompt_tokens,
        steps=kernel.stats.steps,
        swap_outs=kernel.pager.stats.swap_outs,
        swap_ins=kernel.pager.stats.swap_ins,
        processes=dict(Counter(p.state.value for p in processes)),
        num_slots=memory.num_slots,
        num_used_slots=memory.owned_slots,
        context_length=info.context_length,
        kv_tokens=sum(p.num_computed_tokens for p in processes if p.slot is not None),
    )

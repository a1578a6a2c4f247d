"""Admission control: KV page quotas per process and per owner (an API key, in the server).

A process reserves the pages its prompt plus max_tokens can ever need. One that could never fit
its quota is refused at once; one that fits but would take its owner over quota waits, unadmitted,
until the owner's other processes end. Nobody is ever half-served.
"""

from __future__ import annotations

from collections import defaultdict

from llmasos.errors import CapabilityError, QuotaExceededError


class Admission:
    def __init__(
        self, page_size: int, max_pages_per_process: int | None, max_pages_per_owner: int | None
    ) -> None:
        self.page_size = page_size
        self.max_pages_per_process = max_pages_per_process
        self.max_pages_per_owner = max_pages_per_owner
        self._owner_pages: defaultdict[str, int] = defaultdict(int)
        self._admitted: dict[int, tuple[str, int]] = {}  # pid -> (owner, pages)

    def pages_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.page_size)

    def check(self, owner: str, pages: int, max_pages: int | None = None) -> None:
        """Raise QuotaExceededError if a process needing `pages` could never be admitted
        (`max_pages`: its own capability)."""
        if max_pages is not None and pages > max_pages:  # never retryable: a 403, not a 429
            raise CapabilityError(
                "max_pages",
                f"the prompt plus max_tokens need {pages} KV pages; it holds {max_pages}",
            )
        for limit, scope in (
            (self.max_pages_per_process, "per-process"),
            (self.max_pages_per_owner, f"owner {owner!r}"),
        ):
            if limit is not None and pages > limit:
                raise QuotaExceededError(pages, limit, scope)

    def try_admit(self, pid: int, owner: str, pages: int) -> bool:
        """Book `pages` against `owner` if the owner's quota allows it now."""
        limit = self.max_pages_per_owner
        if limit is not None and self._owner_pages[owner] + pages > limit:
            return False
        self._owner_pages[owner] += pages
        self._admitted[pid] = (owner, pages)
        return True

    def is_admitted(self, pid: int) -> bool:
        return pid in self._admitted

    def release(self, pid: int) -> None:
        if pid in self._admitted:
            owner, pages = self._admitted.pop(pid)
            self._owner_pages[owner] -= pages

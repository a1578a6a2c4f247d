"""Virtual context: a conversation larger than the context window, paged to recall memory.

Every turn goes to the recall log as it is added. While the turns kept in the prompt (the
window) pass `page_at` of the token budget, the oldest are paged out (they stay in recall) and
core memory's "paged" block says how many and where they went. Building a prompt for a new
message searches the paged-out turns by meaning and puts the nearest back, above the window,
within the budget. A VirtualContext rebuilt on the same memory picks up where it was.

    vc = VirtualContext(memory, count_tokens, window_tokens=2048)
    vc.add("user", "The vault code is 4172.")   ... many turns later ...
    prompt = vc.prompt("What is the vault code?")   # recalled turn, window, question
    vc.reply("What is the vault code?", generate)   # logs both turns; the model's answer
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmasos.errors import InvalidRequestError
from llmasos.storage.agent_memory import MAX_SEARCH_K, RECALL, AgentMemory, MemoryItem

PAGED_BLOCK = "paged"
ANSWER_RESERVE_TOKENS = 64


@dataclass(frozen=True)
class Turn:
    seq: int
    role: str
    text: str
    tokens: int

    def line(self) -> str:
        return f"{self.role}: {self.text}"


class VirtualContext:
    """The prompt-side view of one principal's conversation."""

    def __init__(
        self,
        memory: AgentMemory,
        count_tokens: Callable[[str], int],
        window_tokens: int,
        *,
        page_at: float = 0.75,
        recall_k: int = 4,
    ) -> None:
        if window_tokens < 4 * ANSWER_RESERVE_TOKENS:
            raise InvalidRequestError("window_tokens", f"must be >= {4 * ANSWER_RESERVE_TOKENS}")
        if not 0.1 <= page_at <= 0.9:
            raise InvalidRequestError("page_at", "must be between 0.1 and 0.9")
        self.memory = memory
        self._count = count_tokens
        self.window_tokens = window_tokens
        self.page_at = page_at
        self.recall_k = recall_k
        self.window: list[Turn] = []
        self.paged_through = 0  # the last seq paged out
        self._reload()

    def _turn(self, item: MemoryItem) -> Turn:
        return Turn(item.seq, item.role, item.text, self._count(f"{item.role}: {item.text}\n"))

    def _reload(self) -> None:
        paged = self.memory.core().get(PAGED_BLOCK, "")
        if paged.startswith("turns 1-"):
            self.paged_through = int(paged.split()[1].split("-")[1])
        self.window = [self._turn(i) for i in self.memory.recall(first_seq=self.paged_through + 1)]
        self._page()

    def add(self, role: str, text: str) -> Turn:
        """Log a turn and keep it in the window (paging out the oldest when over budget)."""
        turn = self._turn(self.memory.log(role, text))
        self.window.append(turn)
        self._page()
        return turn

    def window_used(self) -> int:
        return sum(turn.tokens for turn in self.window)

    def _page(self, limit: int | None = None) -> None:
        """Page out the oldest turns while the window passes `limit` (default: page_at)."""
        limit = int(self.page_at * self.window_tokens) if limit is None else limit
        paged = False
        while len(self.window) > 1 and self.window_used() > limit:
            self.paged_through = self.window.pop(0).seq
            paged = True
        if paged:
            self.memory.core(
                PAGED_BLOCK,
                f"turns 1-{self.paged_through} of this conversation are paged out to recall "
                "memory; the turns most related to the latest message are recalled below.",
            )

    def recalled(self, query: str, budget_tokens: int) -> list[Turn]:
        """Paged-out turns nearest to `query`, in conversation order, within the budget."""
        if not self.paged_through:
            return []
        k = min(MAX_SEARCH_K, 2 * self.recall_k)  # some may not fit the budget
        hits = self.memory.search(query, k=k, tier=RECALL, max_seq=self.paged_through)
        chosen, used = [], 0
        for item in hits:
            turn = self._turn(item)
            if used + turn.tokens <= budget_tokens and len(chosen) < self.recall_k:
                chosen.append(turn)
                used += turn.tokens
        return sorted(chosen, key=lambda t: t.seq)

    def prompt(self, message: str, role: str = "user", answer_role: str = "assistant") -> str:
        """The prompt for answering `message` (which is not logged: add() it for that)."""
        core = "".join(f"[{label}] {text}\n" for label, text in self.memory.core().items())
        head = f"Core memory:\n{core}\n" if core else ""
        tail = f"{role}: {message}\n{answer_role}:"
        fixed = self._count(head + tail) + ANSWER_RESERVE_TOKENS + 16
        recall_budget = self.window_tokens // 4
        self._page(self.window_tokens - fixed - recall_budget)  # room for what is recalled
        window = self.window
        budget = self.window_tokens - fixed - self.window_used()
        recalled = self.recalled(message, budget)
        recall_text = (
            "Recalled from earlier in the conversation:\n"
            + "".join(f"(turn {t.seq}) {t.line()}\n" for t in recalled)
            + "\n"
            if recalled
            else ""
        )
        lines = "".join(f"{t.line()}\n" for t in window)
        return f"{head}{recall_text}Conversation:\n{lines}{tail}"

    def reply(
        self,
        message: str,
        generate: Callable[[str], str],
        role: str = "user",
        answer_role: str = "assistant",
    ) -> str:
        """Answer `message` with `generate(prompt)`, logging the message and the answer."""
        prompt = self.prompt(message, role, answer_role)
        self.add(role, message)
        answer = generate(prompt).strip()
        if answer:
            self.add(answer_role, answer)
        return answer


@dataclass
class Conversation:
    """A VirtualContext with the model that answers in it (Client.conversation)."""

    context: VirtualContext
    generate: Callable[[str], str]

    def say(self, message: str) -> str:
        """The model's answer to `message`; both are logged to recall memory."""
        return self.context.reply(message, self.generate)

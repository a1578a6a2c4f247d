"""The virtual context pages old turns out of a small window into recall memory and brings the
relevant ones back for a question, within the token budget; rebuilt, it picks up where it was."""

from __future__ import annotations

import pytest

from llmasos.errors import InvalidRequestError
from llmasos.storage.agent_memory import AgentMemory
from llmasos.storage.paths import Principal
from llmasos.storage.service import Storage
from llmasos.storage.virtual_context import PAGED_BLOCK, Turn, VirtualContext
from tests.integration.storage.conftest import Backend, Memo

BOT = Principal("alice", "bot")
WINDOW = 512
PAGE_AT = 0.75
FACT = "The code for the vault in the study is 4172; it is hidden behind the painting."
QUESTION = "What is the code that opens the vault?"
TOPICS = [
    "the weather this weekend", "a new sourdough recipe", "last night's football match",
    "training for a ten kilometre run", "painting the garden fence", "a jazz concert in town",
    "repotting the basil", "the train timetable changes", "a tricky crossword clue",
    "a documentary about penguins", "choosing a new bicycle", "the book club's next novel",
    "fixing a squeaky door", "planting tulip bulbs", "a recipe for lentil soup",
    "the neighbour's noisy dog", "learning to juggle", "a trip to the seaside",
]  # fmt: skip
TEMPLATES = [
    "Let's talk about {topic}; I was thinking about it this morning.",
    "Here is one more thought on {topic}: it took longer than I expected.",
    "My sister has strong opinions on {topic}, as usual.",
    "I read an article about {topic} and found it rather interesting.",
    "Do you have any advice about {topic}? I am a beginner.",
]


def count_tokens(text: str) -> int:
    """About four characters a token."""
    return len(text) // 4 + 1


def filler(n: int) -> tuple[str, str]:
    role = "user" if n % 2 == 0 else "assistant"
    topic = TOPICS[(n * 7) % len(TOPICS)]
    return role, TEMPLATES[n % len(TEMPLATES)].format(topic=topic)  # 90 distinct texts


def window_state(context: VirtualContext) -> tuple[int, list[Turn]]:
    return context.paged_through, list(context.window)


@pytest.fixture
def memory(storage: Storage, memo: Memo) -> AgentMemory:
    memo([FACT, QUESTION, *(text for _, text in map(filler, range(200)))])  # one batch
    return storage.memory(BOT, memo)


def test_a_paged_out_fact_is_recalled_for_a_question_about_it(
    backend: Backend, storage: Storage, memory: AgentMemory, memo: Memo
) -> None:
    context = VirtualContext(memory, count_tokens, WINDOW, page_at=PAGE_AT)
    assert context.add("user", FACT).seq == 1
    for n in range(200):
        context.add(*filler(n))
        assert context.window_used() <= PAGE_AT * WINDOW
    assert memory.count("recall") == 201
    assert context.paged_through > 1
    assert all(turn.seq > context.paged_through for turn in context.window)
    assert [turn.seq for turn in context.window] == list(
        range(context.paged_through + 1, 202)
    )  # the window is the newest turns, in order
    window_only = "".join(turn.line() for turn in context.window)
    assert "4172" not in window_only  # truncating to the window would have lost the fact
    assert memory.core()[PAGED_BLOCK].startswith(f"turns 1-{context.paged_through} ")

    prompt = context.prompt(QUESTION)
    recalled, _, conversation = prompt.partition("Conversation:\n")
    assert f"(turn 1) user: {FACT}\n" in recalled
    assert "Recalled from earlier in the conversation:\n" in recalled
    assert "4172" not in conversation
    assert conversation.endswith(f"{filler(199)[1]}\nuser: {QUESTION}\nassistant:")
    assert count_tokens(prompt) <= WINDOW
    assert memory.count("recall") == 201  # the question is not logged by prompt()

    state = window_state(context)
    rebuilt = VirtualContext(storage.memory(BOT, memo), count_tokens, WINDOW, page_at=PAGE_AT)
    assert window_state(rebuilt) == state
    storage.close()
    reopened = backend.open()
    restarted = VirtualContext(reopened.memory(BOT, memo), count_tokens, WINDOW, page_at=PAGE_AT)
    assert window_state(restarted) == state
    assert f"(turn 1) user: {FACT}\n" in restarted.prompt(QUESTION)


def test_a_short_conversation_stays_whole_in_the_window(memory: AgentMemory) -> None:
    context = VirtualContext(memory, count_tokens, WINDOW)
    context.add("user", FACT)
    for n in range(3):
        context.add(*filler(n))
    assert context.paged_through == 0
    assert [turn.seq for turn in context.window] == [1, 2, 3, 4]
    prompt = context.prompt(QUESTION)
    assert "Recalled" not in prompt and PAGED_BLOCK not in memory.core()
    assert prompt.startswith(f"Conversation:\nuser: {FACT}\n")


def test_a_window_of_many_short_turns_still_builds_a_prompt(
    memory: AgentMemory, memo: Memo
) -> None:
    """A 2048-token window holds over a hundred short turns; once some are paged out, building
    a prompt must still work (it searches recall for more turns than a search may return)."""
    replies = ["Sounds good, thanks!", "You're welcome."]
    memo([*replies, QUESTION])
    context = VirtualContext(memory, count_tokens, 2048, page_at=0.5)
    context.add("user", FACT)
    for n in range(160):
        context.add("user" if n % 2 else "assistant", replies[n % 2])
    assert context.paged_through > 0 and len(context.window) > 100
    prompt = context.prompt(QUESTION)
    assert f"(turn 1) user: {FACT}\n" in prompt
    assert count_tokens(prompt) <= 2048


def test_the_window_and_paging_threshold_are_checked(memory: AgentMemory) -> None:
    for window, page_at, field in ((255, 0.75, "window_tokens"), (WINDOW, 0.95, "page_at"),
                                   (WINDOW, 0.05, "page_at")):  # fmt: skip
        with pytest.raises(InvalidRequestError) as error:
            VirtualContext(memory, count_tokens, window, page_at=page_at)
        assert error.value.field == field

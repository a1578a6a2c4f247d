"""The prompts a benchmark sends: random words that share no prefix, and agents that share one.

Every generator is seeded, so two servers measured in one run get the same prompts in the same
order, and neither meets a prefix-cache hit the other does not.
"""

from __future__ import annotations

import random

WORDS = [
    "tide", "glacier", "honey", "black", "printing", "tea", "volcano", "violin", "coral",
    "telegraph", "bread", "owl", "moon", "river", "salt", "lighthouse", "comet", "maple",
    "compass", "silk", "clock", "penguin", "ink", "desert", "bridge", "whale", "paper", "thunder",
    "mushroom", "castle", "rain", "copper",
]  # fmt: skip
RULES = [
    "Always state the assumption you rely on before you answer.",
    "Prefer short sentences and plain words over jargon.",
    "When a question is ambiguous, name the two most likely readings.",
    "Quote numbers with their units and say where they come from.",
    "Never invent a source; say that you do not know instead.",
    "End each answer with one concrete next step for the reader.",
    "Keep lists to at most five items and order them by importance.",
    "If the user is wrong, say so politely and explain why.",
]


def random_prompts(count: int, seed: int = 7, words: int = 60) -> list[str]:
    """Prompts of about `words` words, each starting with its own random number."""
    rng = random.Random(seed)
    return [
        f"{rng.randrange(10**9)} "
        + " ".join(rng.choice(WORDS) for _ in range(words))
        + "\n\nIn short,"
        for _ in range(count)
    ]


def agent_system_prompt(repeats: int) -> str:
    """The long system prompt every agent of the `agents` workload starts with."""
    rules = "\n".join(f"- {rule}" for rule in RULES)
    return f"You are a careful assistant. Follow these rules:\n{rules}\n" * repeats


def agent_opening(agent: int, seed: int = 5) -> str:
    """Agent `agent`'s own first question, after the shared system prompt."""
    rng = random.Random(seed * 1000 + agent)
    topic = " ".join(rng.choice(WORDS) for _ in range(4))
    return f"\nUser {agent}: explain how {topic} are related.\nAssistant:"


def agent_follow_up(turn: int) -> str:
    """The question that follows a reply, at turn `turn` (1-based)."""
    return f"\nUser: go on with point {turn}, briefly.\nAssistant:"

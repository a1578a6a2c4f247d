"""The prefix cache: which engine slot holds which tokens, searchable by longest common prefix.

The contract is small (after SGLang's): insert / extend / truncate / remove keep the cache in step
with what each slot's KV holds, match_prefix finds where a new prompt's start is already
computed. It knows nothing of the engine or of processes; the kernel keeps it in sync.

RadixPrefixCache is a compressed trie over token ids. Every slot's sequence is a path from the
root ending at a node boundary; each node records the slots whose sequences run through it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PrefixMatch:
    length: int  # tokens of the query found at the start of every slot in `slots`
    slots: frozenset[int]


class PrefixCache(ABC):
    @abstractmethod
    def insert(self, slot: int, tokens: Sequence[int]) -> None:
        """`slot` now holds exactly `tokens` (replacing whatever it held)."""

    @abstractmethod
    def extend(self, slot: int, tokens: Sequence[int]) -> None:
        """`slot` grew by `tokens`."""

    @abstractmethod
    def truncate(self, slot: int, length: int) -> None:
        """`slot` keeps only its first `length` tokens."""

    @abstractmethod
    def remove(self, slot: int) -> None:
        """`slot` holds nothing any more."""

    @abstractmethod
    def match_prefix(self, tokens: Sequence[int]) -> PrefixMatch:
        """The longest start of `tokens` that some slot holds, and every slot holding it."""

    @abstractmethod
    def tokens(self, slot: int) -> list[int]:
        """What `slot` holds (empty if nothing)."""


@dataclass(eq=False)
class _Node:
    edge: list[int]  # the tokens from the parent to this node
    parent: _Node | None
    children: dict[int, _Node] = field(default_factory=dict)
    slots: set[int] = field(default_factory=set)  # slots whose sequence covers this whole edge


class RadixPrefixCache(PrefixCache):
    def __init__(self) -> None:
        self._root = _Node([], None)
        self._ends: dict[int, _Node] = {}  # slot -> node where its sequence ends

    def insert(self, slot: int, tokens: Sequence[int]) -> None:
        self.remove(slot)
        self._ends[slot] = self._root
        self.extend(slot, tokens)

    def extend(self, slot: int, tokens: Sequence[int]) -> None:
        if not tokens:
            self._ends.setdefault(slot, self._root)
            return
        node = self._ends.get(slot, self._root)
        if node is not self._root and not node.children and node.slots == {slot}:
            node.edge.extend(tokens)  # the slot is alone at a leaf: grow the edge in place
            return
        self._ends[slot] = self._descend(node, list(tokens), slot)

    def _descend(self, node: _Node, tokens: list[int], slot: int) -> _Node:
        """Walk (creating and splitting nodes) from `node` along `tokens`, marking `slot`."""
        i = 0
        while i < len(tokens):
            child = node.children.get(tokens[i])
            if child is None:
                child = _Node(tokens[i:], node)
                node.children[tokens[i]] = child
                child.slots.add(slot)
                return child
            common = _common_length(child.edge, tokens, i)
            if common < len(child.edge):
                child = self._split(child, common)
            child.slots.add(slot)
            node = child
            i += common
        return node

    @staticmethod
    def _split(node: _Node, at: int) -> _Node:
        """Cut `node`'s edge after `at` tokens; return the new upper node."""
        assert node.parent is not None
        upper = _Node(node.edge[:at], node.parent, slots=set(node.slots))
        node.parent.children[upper.edge[0]] = upper
        node.edge = node.edge[at:]
        node.parent = upper
        upper.children[node.edge[0]] = node
        return upper

    def truncate(self, slot: int, length: int) -> None:
        tokens = self.tokens(slot)
        if length < len(tokens):
            self.insert(slot, tokens[:length])

    def remove(self, slot: int) -> None:
        node = self._ends.pop(slot, None)
        while node is not None and node is not self._root:
            node.slots.discard(slot)
            parent = node.parent
            if not node.slots and not node.children and parent is not None:
                del parent.children[node.edge[0]]
            node = parent

    def match_prefix(self, tokens: Sequence[int]) -> PrefixMatch:
        node, i = self._root, 0
        best = PrefixMatch(0, frozenset())
        while i < len(tokens):
            child = node.children.get(tokens[i])
            if child is None:
                break
            common = _common_length(child.edge, tokens, i)
            best = PrefixMatch(i + common, frozenset(child.slots))
            if common < len(child.edge):
                break
            node, i = child, i + common
        return best

    def tokens(self, slot: int) -> list[int]:
        node = self._ends.get(slot)
        edges: list[list[int]] = []
        while node is not None and node is not self._root:
            edges.append(node.edge)
            node = node.parent
        return [token for edge in reversed(edges) for token in edge]

    def __contains__(self, slot: int) -> bool:
        return slot in self._ends


def _common_length(edge: list[int], tokens: Sequence[int], start: int) -> int:
    n = min(len(edge), len(tokens) - start)
    for k in range(n):
        if edge[k] != tokens[start + k]:
            return k
    return n


def shared_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` have in common."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(differ[0]) if differ.size else n

"""Which engine replica serves a request: cache-aware routing over an approximate prefix tree.

The router cannot see the replicas' KV caches, so it remembers what it sent where: a
character-level radix tree of recent prompt texts, each node marked with the replicas that were
sent it (SGLang's router does the same). A prompt goes where its longest prefix was sent, unless
the load is out of balance; `RoundRobinRouter` is the baseline it is measured against.

    LLMasOSError
    └── NoHealthyReplicaError    no replica is healthy (also a RuntimeError)
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from llmasos.errors import InvalidRequestError, LLMasOSError


class NoHealthyReplicaError(LLMasOSError, RuntimeError):
    """Raised when a request must be routed and no replica is healthy; retry once one is."""

    def __init__(self, replicas: int) -> None:
        super().__init__(
            f"no healthy replica among {replicas}; retry when a replica has started or recovered"
        )


@dataclass(frozen=True)
class ReplicaLoad:
    """One replica's load as the router sees it when it routes."""

    replica_id: str
    running: int
    queued: int
    healthy: bool = True

    @property
    def in_flight(self) -> int:
        """Requests at the replica: running plus queued."""
        return self.running + self.queued


class Router:
    """A routing policy: `choose` keeps to healthy replicas and an agent's own (sticky) one;
    a policy decides the rest in `_pick`."""

    def choose(
        self,
        text: str,
        loads: Sequence[ReplicaLoad],
        priority: int = 0,
        sticky: str | None = None,
    ) -> str:
        """The id of the replica that should serve `text`; never an unhealthy one. A healthy
        `sticky` replica is chosen whatever the policy: it is where an agent's state lives."""
        healthy = [load for load in loads if load.healthy]
        if not healthy:
            raise NoHealthyReplicaError(len(loads))
        if any(load.replica_id == sticky for load in healthy):
            assert sticky is not None
            return sticky
        return self._pick(text, healthy, priority)

    def _pick(self, text: str, healthy: Sequence[ReplicaLoad], priority: int) -> str:
        raise NotImplementedError

    def record(self, replica_id: str, text: str) -> None:
        """Note that `text` was sent to the replica (nothing, for a policy blind to text)."""

    def forget(self, replica_id: str) -> None:
        """Drop what is known of a replica that went away (nothing, unless kept)."""


class _Node:
    __slots__ = ("children", "parent", "tenants", "text")

    def __init__(self, text: str, parent: _Node | None) -> None:
        self.text = text  # the edge label from the parent
        self.parent = parent
        self.children: dict[str, _Node] = {}  # keyed by the first character of their text
        self.tenants: dict[str, int] = {}  # replica id -> clock of its last insert through here


def _common_length(edge: str, text: str, start: int) -> int:
    """How many leading characters of `edge` equal text[start:] (binary search on startswith)."""
    if text.startswith(edge, start):
        return len(edge)
    low, high = 0, min(len(edge), len(text) - start)  # edge[:low] matches, edge[:high+1] not
    while low < high:
        middle = (low + high + 1) // 2
        if text.startswith(edge[:middle], start):
            low = middle
        else:
            high = middle - 1
    return low


class PrefixTree:
    """An approximate map of the replicas' prefix caches: a radix tree of the texts sent to
    each replica, at most `max_chars` characters per replica.

    Invariant: a replica marked on a node is marked on all its ancestors, so it holds a prefix
    exactly as deep as its deepest marked node on that path. Over budget, a replica loses its
    least recently inserted leaves first (a whole edge at a time); a node no replica holds is
    removed. Not thread-safe: CacheAwareRouter guards it with its lock.
    """

    def __init__(self, max_chars: int) -> None:
        if max_chars < 1:
            raise InvalidRequestError("max_chars", f"must be >= 1, not {max_chars}")
        self.max_chars = max_chars
        self._root = _Node("", None)
        self._clock = 0
        self._chars: dict[str, int] = {}
        self._nodes: dict[str, set[_Node]] = {}

    def chars(self, replica_id: str) -> int:
        """Characters the tree holds for a replica (its share of the budget)."""
        return self._chars.get(replica_id, 0)

    def match(self, text: str) -> dict[str, int]:
        """For each replica holding a prefix of `text`, the length of its longest one."""
        matched: dict[str, int] = {}
        node, depth = self._root, 0
        while depth < len(text) and (child := node.children.get(text[depth])) is not None:
            common = _common_length(child.text, text, depth)
            for replica_id in child.tenants:
                matched[replica_id] = depth + common
            if common < len(child.text):
                break
            node, depth = child, depth + common
        return matched

    def insert(self, replica_id: str, text: str) -> None:
        """Mark `text` as sent to the replica (most recently used), then evict to the budget."""
        self._clock += 1
        nodes = self._nodes.setdefault(replica_id, set())
        node, depth = self._root, 0
        while depth < len(text):
            child = node.children.get(text[depth])
            if child is None:
                child = node.children[text[depth]] = _Node(text[depth:], node)
            else:
                common = _common_length(child.text, text, depth)
                if common < len(child.text):
                    child = self._split(child, common)
            if replica_id not in child.tenants:
                self._chars[replica_id] = self.chars(replica_id) + len(child.text)
                nodes.add(child)
            child.tenants[replica_id] = self._clock
            node, depth = child, depth + len(child.text)
        self._evict(replica_id)

    def forget(self, replica_id: str) -> None:
        """Drop everything held for a replica."""
        for node in self._nodes.pop(replica_id, set()):
            del node.tenants[replica_id]
            if not node.tenants:
                self._detach(node)
        self._chars.pop(replica_id, None)

    def _split(self, node: _Node, at: int) -> _Node:
        """Cut node's edge after `at` characters; return the new upper half."""
        parent = node.parent
        assert parent is not None  # the root has no edge to split
        upper = _Node(node.text[:at], parent)
        upper.tenants = dict(node.tenants)
        parent.children[upper.text[0]] = upper
        node.text = node.text[at:]
        node.parent = upper
        upper.children[node.text[0]] = node
        for replica_id in upper.tenants:
            self._nodes[replica_id].add(upper)
        return upper

    def _detach(self, node: _Node) -> None:
        parent = node.parent
        if parent is not None and parent.children.get(node.text[0]) is node:
            del parent.children[node.text[0]]

    def _is_leaf_of(self, node: _Node, replica_id: str) -> bool:
        return all(replica_id not in child.tenants for child in node.children.values())

    def _evict(self, replica_id: str) -> None:
        """Remove the replica's least recently used leaves until it is within the budget."""
        if self.chars(replica_id) <= self.max_chars:
            return
        nodes = self._nodes[replica_id]
        # Two leaves of one replica never share a clock (one insert marks a single path), so
        # id() only keeps nodes from being compared; the order is deterministic.
        leaves = [
            (node.tenants[replica_id], id(node), node)
            for node in nodes
            if self._is_leaf_of(node, replica_id)
        ]
        heapq.heapify(leaves)
        while self._chars[replica_id] > self.max_chars:
            _, _, node = heapq.heappop(leaves)
            del node.tenants[replica_id]
            nodes.discard(node)
            self._chars[replica_id] -= len(node.text)
            if not node.tenants:
                self._detach(node)
            parent = node.parent
            if (
                parent is not None
                and replica_id in parent.tenants
                and self._is_leaf_of(parent, replica_id)
            ):
                heapq.heappush(leaves, (parent.tenants[replica_id], id(parent), parent))


class CacheAwareRouter(Router):
    """Routes to the replica that most likely holds the prompt's prefix, within load bounds.

    In order: a healthy `sticky` replica (an agent's own) is chosen; a request with
    priority > 0 goes where it waits least (fewest queued, then fewest running); if the load is
    out of balance (max - min of running + queued above `balance_abs` and max above
    `balance_rel` times min) the least loaded replica is chosen; otherwise the replica holding
    the longest prefix of the text, if that prefix covers at least `min_match` of it, else the
    least loaded. Ties go to the less loaded replica, then the smaller tree, then the smaller
    id. Unhealthy replicas are never chosen.

    The balance bounds are tight by default (2 requests, 25%): a CPU replica serves tens of
    sequences, not hundreds, and a burst of prompts sharing a system prompt would otherwise
    pile onto the first replica that got one (bench/cluster.py measured 34 to 14 requests at
    8 and 1.5, and a longer makespan than round robin).
    """

    def __init__(
        self,
        min_match: float = 0.5,
        balance_abs: int = 2,
        balance_rel: float = 1.25,
        max_chars_per_replica: int = 1 << 20,
    ) -> None:
        if not 0 <= min_match <= 1:
            raise InvalidRequestError("min_match", f"must be in [0, 1], not {min_match!r}")
        if balance_abs < 0:
            raise InvalidRequestError("balance_abs", f"must be >= 0, not {balance_abs!r}")
        if not balance_rel >= 1:
            raise InvalidRequestError("balance_rel", f"must be >= 1, not {balance_rel!r}")
        self.min_match = min_match
        self.balance_abs = balance_abs
        self.balance_rel = balance_rel
        self.tree = PrefixTree(max_chars_per_replica)
        self._lock = threading.Lock()

    def _pick(self, text: str, healthy: Sequence[ReplicaLoad], priority: int) -> str:
        with self._lock:
            if priority > 0:
                return min(healthy, key=lambda x: (x.queued, x.running, *self._order(x))).replica_id
            if self._imbalanced(healthy):
                return min(healthy, key=self._order).replica_id
            matched = self.tree.match(text)
            best = min(healthy, key=lambda x: (-matched.get(x.replica_id, 0), *self._order(x)))
            if matched.get(best.replica_id, 0) >= self.min_match * len(text):
                return best.replica_id
            return min(healthy, key=self._order).replica_id

    def record(self, replica_id: str, text: str) -> None:
        """Note that `text` was sent to the replica."""
        with self._lock:
            self.tree.insert(replica_id, text)

    def forget(self, replica_id: str) -> None:
        """Drop the replica's tree (it stopped or restarted with an empty cache)."""
        with self._lock:
            self.tree.forget(replica_id)

    def _order(self, load: ReplicaLoad) -> tuple[int, int, str]:
        return (load.in_flight, self.tree.chars(load.replica_id), load.replica_id)

    def _imbalanced(self, healthy: Sequence[ReplicaLoad]) -> bool:
        counts = [load.in_flight for load in healthy]
        most, fewest = max(counts), min(counts)
        return most - fewest > self.balance_abs and most > self.balance_rel * fewest


class RoundRobinRouter(Router):
    """The baseline: each request to the next healthy replica in id order, after the one chosen
    last, whatever its text, load or priority. A healthy `sticky` replica is still chosen, since
    stickiness is where an agent's state lives, not a routing preference."""

    def __init__(self) -> None:
        self._last: str | None = None
        self._lock = threading.Lock()

    def _pick(self, text: str, healthy: Sequence[ReplicaLoad], priority: int) -> str:
        ids = sorted(load.replica_id for load in healthy)
        with self._lock:
            last = self._last
            self._last = next((i for i in ids if last is None or i > last), ids[0])
            return self._last

"""Inter-process communication: a mailbox per live agent and named channels, both bounded.

A message goes to a pid (that agent's mailbox) or to a channel name (a queue any agent of the
same owner may receive from; each message reaches one receiver). broadcast() puts one copy in
every other live agent's mailbox of the same owner, or in none when any of them is full.
Messages never cross owners: each owner has its own channels, and another owner's pid is
unknown to an agent. Nothing is dropped silently: a message to
an unknown pid raises NoSuchProcessError, to an ended agent ProcessTerminatedError, to a full
mailbox or channel MailboxFullError. Receiving blocks (optionally up to a timeout, then
ReceiveTimeoutError) and can be interrupted by a check the caller passes (an agent being
killed).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmasos.errors import (
    InvalidRequestError,
    MailboxFullError,
    NoSuchProcessError,
    ProcessTerminatedError,
    ReceiveTimeoutError,
)

MAILBOX_CAPACITY = 256
CHANNEL_CAPACITY = 1024
MAX_CHANNELS = 1024
POLL_S = 0.05  # how often a blocked receiver runs its interruption check
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class Message:
    sender: int  # the sending agent's pid
    body: Any
    channel: str | None = None  # the channel it came through; None for a direct message
    sent_at: float = field(default_factory=time.time)


class PostOffice:
    """Every mailbox and channel of one agent runtime, under one lock."""

    def __init__(
        self, mailbox_capacity: int = MAILBOX_CAPACITY, channel_capacity: int = CHANNEL_CAPACITY
    ) -> None:
        self._cond = threading.Condition()
        self._mailboxes: dict[int, deque[Message]] = {}
        self._closed: set[int] = set()  # pids whose mailbox was closed when they ended
        self._owners: dict[int, str] = {}  # pid -> owner: messages stay within an owner
        self._channels: dict[tuple[str, str], deque[Message]] = {}  # (owner, name)
        self._mailbox_capacity = mailbox_capacity
        self._channel_capacity = channel_capacity

    def open(self, pid: int, owner: str = "local") -> None:
        with self._cond:
            self._mailboxes[pid] = deque()
            self._owners[pid] = owner

    def close(self, pid: int) -> None:
        """The agent ended: later messages to it raise ProcessTerminatedError."""
        with self._cond:
            self._mailboxes.pop(pid, None)
            self._closed.add(pid)  # its owner is kept: others must not learn it ended
            self._cond.notify_all()

    def send(self, sender: int, to: int | str, body: Any) -> None:
        with self._cond:
            owner = self._owners.get(sender, "local")
            if isinstance(to, str):
                queue, capacity = self._channel(owner, to), self._channel_capacity
                name = f"channel {to}"
                message = Message(sender, body, channel=to)
            else:
                queue, capacity = self._mailbox_of(to, owner), self._mailbox_capacity
                name = f"pid {to}"
                message = Message(sender, body)
            if len(queue) >= capacity:
                raise MailboxFullError(f"to: {name} holds {capacity} unread messages (its limit)")
            queue.append(message)
            self._cond.notify_all()

    def broadcast(self, sender: int, body: Any) -> int:
        """One copy to every other open mailbox of the sender's owner; how many were sent."""
        with self._cond:
            owner = self._owners.get(sender, "local")
            receivers = [
                pid for pid in self._mailboxes if pid != sender and self._owners[pid] == owner
            ]  # open mailboxes only: an ended agent keeps its owner but has none
            for pid in receivers:
                if len(self._mailboxes[pid]) >= self._mailbox_capacity:
                    raise MailboxFullError(
                        f"to: pid {pid} holds {self._mailbox_capacity} unread messages; "
                        "nothing was broadcast"
                    )
            for pid in receivers:
                self._mailboxes[pid].append(Message(sender, body))
            self._cond.notify_all()
            return len(receivers)

    def receive(
        self,
        pid: int,
        *,
        channel: str | None = None,
        timeout: float | None = None,
        interrupt: Callable[[], None] = lambda: None,
    ) -> Message:
        """The oldest message in `pid`'s mailbox (or in `channel`), waiting for one."""
        if timeout is not None and timeout < 0:
            raise InvalidRequestError("timeout", f"must be at least 0, got {timeout}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            owner = self._owners.get(pid, "local")
            queue = (
                self._mailbox_of(pid, owner) if channel is None else self._channel(owner, channel)
            )
            while not queue:
                interrupt()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    where = f"channel {channel}" if channel else "the mailbox"
                    raise ReceiveTimeoutError(f"timeout: nothing arrived in {where} in {timeout} s")
                self._cond.wait(POLL_S if left is None else min(POLL_S, left))
            return queue.popleft()

    def pending(self, pid: int) -> int:
        with self._cond:
            return len(self._mailboxes.get(pid, ()))

    def _mailbox_of(self, pid: int, owner: str) -> deque[Message]:
        """`pid`'s mailbox, if it is an agent of `owner` (others' are as if they were not)."""
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise InvalidRequestError("to", f"must be a pid or a channel name, got {pid!r}")
        if pid in self._owners and self._owners[pid] != owner:
            raise NoSuchProcessError(pid)
        if pid in self._mailboxes:
            return self._mailboxes[pid]
        if pid in self._closed:
            raise ProcessTerminatedError(pid, "receive a message")
        raise NoSuchProcessError(pid)

    def _channel(self, owner: str, name: str) -> deque[Message]:
        """Channel `name` of `owner` (each owner has its own channels of any name)."""
        if not _CHANNEL_NAME.match(name):
            raise InvalidRequestError("channel", "a channel name is 1-64 of A-Z a-z 0-9 _ . : -")
        key = (owner, name)
        if key not in self._channels:
            if sum(o == owner for o, _ in self._channels) >= MAX_CHANNELS:
                raise InvalidRequestError("channel", f"at most {MAX_CHANNELS} channels an owner")
            self._channels[key] = deque()
        return self._channels[key]

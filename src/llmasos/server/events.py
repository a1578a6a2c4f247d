"""Bridges a process's events from the kernel thread into asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from llmasos.kernel.process import Event, Process, Result


async def merged_events(processes: Sequence[Process]) -> AsyncIterator[tuple[int, Event]]:
    """(index, event) for the events of several processes as they happen, until each has
    published its Result. Events of one process keep their order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
    listeners = []
    for index, process in enumerate(processes):

        def listener(event: Event, index: int = index) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (index, event))

        listeners.append(listener)
        process.subscribe(listener)
    remaining = len(processes)
    try:
        while remaining:
            index, event = await queue.get()
            if isinstance(event, Result):
                remaining -= 1
            yield index, event
    finally:
        for process, listener in zip(processes, listeners, strict=True):
            process.unsubscribe(listener)

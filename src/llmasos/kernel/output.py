"""Turns a process's generated tokens into text as it streams, and watches for stop strings.

Text that might be the start of a stop string is held back until it is clear that it is not, so a
streamed client never sees text that the final result removes. Bytes of a UTF-8 character split
across tokens are held back until the character is complete.
"""

from __future__ import annotations

import codecs


class OutputText:
    """Accumulates generated text; `feed` returns what can be released to the client now."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self._stop = stop
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""
        self._released = 0
        self.stopped = False  # a stop string matched; the text ends before it

    def copy(self) -> OutputText:
        """An independent copy in the same state (a fork's output continues from here)."""
        twin = OutputText(self._stop)
        twin._decoder.setstate(self._decoder.getstate())
        twin._text, twin._released, twin.stopped = self._text, self._released, self.stopped
        return twin

    @property
    def text(self) -> str:
        """All text so far (the final text, once finish() was called)."""
        return self._text

    @property
    def released_text(self) -> str:
        """The text handed out by feed() and finish() so far."""
        return self._text[: self._released]

    def feed(self, data: bytes) -> str:
        """Add one token's bytes; return newly releasable text (may be empty)."""
        self._text += self._decoder.decode(data)
        if self._stop:
            cut = self._find_stop()
            if cut is not None:
                self._text = self._text[:cut]
                self.stopped = True
                return self._release(len(self._text))
            return self._release(len(self._text) - self._held_back())
        return self._release(len(self._text))

    def finish(self) -> str:
        """End of generation: release everything still held back."""
        if not self.stopped:
            self._text += self._decoder.decode(b"", final=True)
        return self._release(len(self._text))

    def _release(self, end: int) -> str:
        piece = self._text[self._released : end]
        self._released = max(self._released, end)
        return piece

    def _find_stop(self) -> int | None:
        # A match must involve new text, so only the tail past the released text needs searching.
        longest = max(len(s) for s in self._stop)
        start = max(0, self._released - longest + 1)
        hits = [i for i in (self._text.find(s, start) for s in self._stop) if i >= 0]
        return min(hits) if hits else None

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop string."""
        held = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(self._text)), held, -1):
                if self._text.endswith(stop[:n]):
                    held = n
                    break
        return held

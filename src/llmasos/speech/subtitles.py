"""A transcript's segments as SubRip (srt) and WebVTT subtitles."""

from __future__ import annotations

from collections.abc import Sequence

from llmasos.speech.transcriber import Segment


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    whole, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{separator}{millis:03d}"


def as_srt(segments: Sequence[Segment]) -> str:
    blocks = [
        f"{n}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text}\n"
        for n, s in enumerate(segments, start=1)
    ]
    return "\n".join(blocks)


def as_vtt(segments: Sequence[Segment]) -> str:
    blocks = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text}\n" for s in segments]
    return "WEBVTT\n\n" + "\n".join(blocks)

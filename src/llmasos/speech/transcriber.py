"""Speech to text with faster-whisper (CTranslate2) on the repository's Whisper model.

The audio a client sends is bounded before any decoder sees it (MAX_AUDIO_BYTES, as OpenAI's
limit), decoded to 16 kHz mono by PyAV, and bounded again by length (MAX_AUDIO_S). One model
is loaded on first use and kept; transcriptions take turns on it (a lock), each on
`threads` CPU threads.
"""

from __future__ import annotations

import importlib
import io
import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmasos.errors import InvalidRequestError, NotInstalledError, UnprocessableError

SAMPLE_RATE = 16_000
MAX_AUDIO_BYTES = 25 * 2**20
MAX_AUDIO_S = 30 * 60
MAX_PROMPT_CHARS = 2_000


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    duration: float
    segments: list[Segment] = field(default_factory=list)


def decoded(audio: bytes) -> np.ndarray:
    """The audio as 16 kHz mono float32 samples. On "file": InvalidRequestError when it is too
    large, UnprocessableError when it is empty, not audio or too long; the decoding stops as
    soon as it passes MAX_AUDIO_S (a small file of a very compressed format could otherwise
    decode to hours of samples)."""
    if not audio:
        raise UnprocessableError("file", "is empty")
    if len(audio) > MAX_AUDIO_BYTES:
        raise InvalidRequestError("file", f"is {len(audio)} bytes; the limit is {MAX_AUDIO_BYTES}")
    av = _library("av")
    try:
        chunks = _decode(av, audio)
    except (av.FFmpegError, ValueError, IndexError) as error:
        raise UnprocessableError(
            "file", f"is not audio this server can decode ({error})"
        ) from error
    if not chunks:
        raise UnprocessableError("file", "holds no audio samples")
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def _decode(av: Any, audio: bytes) -> list[np.ndarray]:
    """16-bit mono samples at SAMPLE_RATE, chunk by chunk, refused past MAX_AUDIO_S."""
    chunks, count, limit = [], 0, MAX_AUDIO_S * SAMPLE_RATE
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    with av.open(io.BytesIO(audio), mode="r", metadata_errors="ignore") as container:
        stream = container.streams.audio[0]  # IndexError: no audio in it
        for frame in itertools.chain(container.decode(stream), [None]):  # None: the rest
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1)
                count += chunk.size
                if count > limit:
                    raise UnprocessableError("file", f"is over {MAX_AUDIO_S} s long")
                chunks.append(chunk)
    return chunks


class Transcriber:
    """One Whisper model folder, loaded on first use."""

    def __init__(self, folder: Path, threads: int = 2) -> None:
        self.folder = folder
        self.threads = threads
        self._model: Any = None  # faster_whisper.WhisperModel
        self._lock = threading.Lock()

    def transcribe(
        self,
        audio: bytes,
        *,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float = 0.0,
    ) -> Transcript:
        """The audio's text and timed segments (blocking: call it in a worker thread)."""
        if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidRequestError("prompt", f"is over {MAX_PROMPT_CHARS} characters")
        with self._lock:  # one decoding and transcription at a time: bounded memory
            samples = decoded(audio)
            model = self._loaded()
            if language is not None and language not in model.supported_languages:
                raise UnprocessableError(
                    "language", f"{language!r} is not an ISO-639-1 code Whisper knows"
                )
            parts, info = model.transcribe(
                samples, language=language, initial_prompt=prompt, temperature=temperature,
                beam_size=5, condition_on_previous_text=False,
            )  # fmt: skip
            segments = [
                Segment(i, s.start, s.end, s.text.strip(), s.avg_logprob, s.no_speech_prob)
                for i, s in enumerate(parts)
            ]
        text = " ".join(s.text for s in segments if s.text)
        return Transcript(text, info.language, samples.size / SAMPLE_RATE, segments)

    def _loaded(self) -> Any:
        if self._model is None:
            self._model = _library("faster_whisper").WhisperModel(
                str(self.folder), device="cpu", compute_type="int8", cpu_threads=self.threads
            )
        return self._model


def _library(module: str) -> Any:
    """A speech library, imported when first needed (the speech extra is optional)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise NotInstalledError("speech to text", "pip install 'llmasos[speech]'") from error

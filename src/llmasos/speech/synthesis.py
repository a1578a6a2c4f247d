"""Text to speech with espeak-ng, the distribution's synthesiser (a program: no model files).

OpenAI's voices map to espeak-ng voices; its speed (1.0 = 175 words a minute) to espeak-ng's
rate, which must lie within 80-450 words a minute. The audio is 16-bit mono, resampled from
espeak-ng's 22.05 kHz to OpenAI's 24 kHz, and given as WAV, raw PCM or MP3 (lameenc).
"""

from __future__ import annotations

import importlib
import io
import shutil
import subprocess
import wave
from dataclasses import dataclass

import numpy as np

from llmasos.errors import EngineError, InvalidRequestError, NotInstalledError

SPEECH_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "espeak-ng")  # all: espeak-ng
VOICES = {
    "alloy": "en-us", "ash": "en-us+m2", "ballad": "en-gb-x-rp", "coral": "en-us+f2",
    "echo": "en-us+m3", "fable": "en-gb", "nova": "en-us+f3", "onyx": "en-us+m7",
    "sage": "en-us+m4", "shimmer": "en-us+f4", "verse": "en-us+m5",
}  # fmt: skip
MEDIA_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm"}
MAX_INPUT_CHARS = 4096  # as OpenAI's
BASE_WPM, MIN_WPM, MAX_WPM = 175, 80, 450
SLOWEST, FASTEST = round(MIN_WPM / BASE_WPM + 0.005, 2), round(MAX_WPM / BASE_WPM - 0.005, 2)
SAMPLE_RATE = 24_000
ESPEAK_TIMEOUT_S = 120


@dataclass(frozen=True)
class Speech:
    audio: bytes
    media_type: str
    seconds: float


def check_request(text: str, voice: str, speed: float, response_format: str) -> None:
    """InvalidRequestError naming the first field out of bounds."""
    if not text:
        raise InvalidRequestError("input", "is empty")
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidRequestError("input", f"is over {MAX_INPUT_CHARS} characters")
    if voice not in VOICES:
        raise InvalidRequestError("voice", f"must be one of {sorted(VOICES)}")
    if response_format not in MEDIA_TYPES:
        raise InvalidRequestError(
            "response_format", f"must be one of {sorted(MEDIA_TYPES)} (espeak-ng's encoders here)"
        )
    if not SLOWEST <= speed <= FASTEST:
        raise InvalidRequestError(
            "speed", f"must be {SLOWEST} to {FASTEST} with espeak-ng ({MIN_WPM}-{MAX_WPM} wpm)"
        )


def speak(
    text: str, voice: str = "alloy", speed: float = 1.0, response_format: str = "mp3"
) -> Speech:
    """The text spoken (blocking: call it in a worker thread)."""
    check_request(text, voice, speed, response_format)
    program = shutil.which("espeak-ng")
    if program is None:
        raise NotInstalledError("espeak-ng", "apt-get install espeak-ng")
    command = [program, "--stdout", "-v", VOICES[voice], "-s", str(round(BASE_WPM * speed))]
    try:
        done = subprocess.run(
            command, input=text.encode(), capture_output=True, timeout=ESPEAK_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as error:
        raise EngineError(f"espeak-ng took over {ESPEAK_TIMEOUT_S} s") from error
    if done.returncode != 0:
        raise EngineError(f"espeak-ng failed: {done.stderr.decode(errors='replace').strip()}")
    rate, samples = _wav_samples(done.stdout)
    samples = _resampled(samples, rate, SAMPLE_RATE)
    audio = _encoded(samples, response_format)
    return Speech(audio, MEDIA_TYPES[response_format], samples.size / SAMPLE_RATE)


def _wav_samples(data: bytes) -> tuple[int, np.ndarray]:
    """espeak-ng's streamed WAV (its sizes are unset): the rate and the 16-bit samples."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise EngineError("espeak-ng wrote no WAV audio")
    rate = int.from_bytes(data[24:28], "little")
    start = data.find(b"data", 12) + 8
    body = data[start : start + (len(data) - start) // 2 * 2]
    return rate, np.frombuffer(body, dtype="<i2")


def _resampled(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target or samples.size == 0:
        return samples.astype("<i2")
    count = round(samples.size * target / rate)
    positions = np.linspace(0, samples.size - 1, count)
    return np.interp(positions, np.arange(samples.size), samples).round().astype("<i2")


def _encoded(samples: np.ndarray, response_format: str) -> bytes:
    pcm = samples.tobytes()
    if response_format == "pcm":
        return pcm
    if response_format == "wav":
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            wav.writeframes(pcm)
        return out.getvalue()
    try:
        lameenc = importlib.import_module("lameenc")
    except ImportError as error:
        raise NotInstalledError("MP3 encoding", "pip install 'llmasos[speech]'") from error
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(64)
    encoder.set_in_sample_rate(SAMPLE_RATE)
    encoder.set_channels(1)
    encoder.set_quality(2)
    return bytes(encoder.encode(pcm) + encoder.flush())

"""Speech on a real server through the official openai package: espeak-ng's speech is heard by
Whisper base (imported from PyPI into the repository), the server's own speech is playable
audio that Whisper hears back, every transcript format has its shape, bad input is a clear
400, and `llmasos run --audio ... --voice` goes from a recording to spoken words."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
from pathlib import Path

import av
import httpx
import numpy as np
import openai
import pytest
from faster_whisper.audio import decode_audio

from llmasos.models.repository import Repository
from tests.integration.test_server import LLMASOS

SENTENCE = "Please schedule the meeting with the engineering team for Thursday afternoon."
ESPEAK = shutil.which("espeak-ng")
pytestmark = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def heard(said: str, text: str) -> float:
    """The share of the words said that the transcript holds."""
    got = set(words(text))
    return sum(w in got for w in words(said)) / len(words(said))


@pytest.fixture(scope="module")
def oai(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "sentence.wav"
    subprocess.run([ESPEAK, "-v", "en-us", "-w", str(path), SENTENCE], check=True)
    return path


def test_espeak_speech_is_heard_by_whisper_from_the_repository(oai, recording, session_home):
    with recording.open("rb") as audio:
        text = oai.audio.transcriptions.create(model="whisper-1", file=audio).text
    assert heard(SENTENCE, text) >= 0.8, text
    manifest = Repository(session_home / "models").show("whisper-base:f16")
    assert manifest.format == "ctranslate2" and manifest.architecture == "whisper"


def test_a_speech_model_is_listed_but_never_loaded_for_generation(url, oai, recording):
    with recording.open("rb") as audio:  # imports it, if no test did before
        oai.audio.transcriptions.create(model="whisper-1", file=audio)
    listed = [m.id for m in oai.models.list().data]
    assert "whisper-base:f16" in listed
    body = {"model": "whisper-base:f16", "prompt": "hi", "max_tokens": 1}
    reply = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
    assert reply.status_code == 422 and reply.json()["error"]["param"] == "model", reply.text
    assert "/v1/audio" in reply.json()["error"]["message"]


def test_the_servers_speech_is_playable_and_heard_back(oai):
    spoken = {
        fmt: oai.audio.speech.create(
            model="tts-1", voice="nova", input=SENTENCE, response_format=fmt
        ).content
        for fmt in ("wav", "mp3", "pcm")
    }
    with wave.open(io.BytesIO(spoken["wav"])) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24_000, 1, 2)
        seconds = wav.getnframes() / 24_000
    assert 2 < seconds < 15
    assert len(spoken["pcm"]) == 2 * wav.getnframes()  # the same samples, raw
    mp3 = decode_audio(io.BytesIO(spoken["mp3"]), sampling_rate=16_000)
    assert abs(mp3.size / 16_000 - seconds) < 0.5
    text = oai.audio.transcriptions.create(model="whisper-1", file=("s.mp3", spoken["mp3"])).text
    assert heard(SENTENCE, text) >= 0.8, text


def test_each_transcript_format_has_its_shape(url, recording):
    def ask(fmt: str) -> httpx.Response:
        files = {"file": ("s.wav", recording.read_bytes())}
        data = {"model": "whisper-1", "response_format": fmt, "language": "en"}
        reply = httpx.post(f"{url}/v1/audio/transcriptions", files=files, data=data, timeout=120)
        assert reply.status_code == 200, reply.text
        return reply

    verbose = ask("verbose_json").json()
    assert verbose["language"] == "en" and verbose["duration"] > 2
    segments = verbose["segments"]
    assert segments and all(s["start"] < s["end"] <= verbose["duration"] + 1 for s in segments)
    assert verbose["text"] == " ".join(s["text"] for s in segments)
    assert ask("text").text == verbose["text"] + "\n"
    assert ask("srt").text.startswith("1\n00:00:0")
    assert ask("vtt").text.startswith("WEBVTT\n\n00:00:0")


@pytest.mark.parametrize(
    ("route", "request_", "param"),
    [
        ("transcriptions", {"files": {"file": ("e.wav", b"")}, "data": {"model": "whisper-1"}},
         "file"),
        ("transcriptions", {"files": {"file": ("n.wav", b"not audio at all" * 64)},
                            "data": {"model": "whisper-1"}}, "file"),
        ("transcriptions", {"files": {"file": ("n.wav", b"RIFF")},
                            "data": {"model": "Bad Name!"}}, "model"),
        ("transcriptions", {"files": {"file": ("n.wav", b"RIFF")},
                            "data": {"model": "whisper-1", "temperature": "3"}}, "temperature"),
        ("transcriptions", {"files": {"file": ("n.wav", b"RIFF")},
                            "data": {"model": "whisper-1",
                                     "timestamp_granularities[]": "word"}},
         "timestamp_granularities"),
        ("speech", {"json": {"model": "tts-1", "voice": "robot", "input": "hi"}}, "voice"),
        ("speech", {"json": {"model": "tts-1", "voice": "alloy", "input": "hi",
                             "response_format": "opus"}}, "response_format"),
        ("speech", {"json": {"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 0.3}},
         "speed"),
        ("speech", {"json": {"model": "tts-1", "voice": "alloy", "input": "x" * 4097}}, "input"),
        ("speech", {"json": {"model": "tts-1", "voice": "alloy", "input": ""}}, "input"),
        ("speech", {"json": {"model": "gemma3-270m", "voice": "alloy", "input": "hi"}}, "model"),
    ],
)  # fmt: skip
def test_bad_audio_requests_are_refused_naming_the_field(url, route, request_, param):
    reply = httpx.post(f"{url}/v1/audio/{route}", timeout=60, **request_)
    assert reply.status_code in (400, 422), reply.text
    assert reply.json()["error"]["param"] == param, reply.text


def test_run_goes_from_a_recording_to_spoken_words(url, recording, tmp_path):
    out = tmp_path / "reply.wav"
    done = subprocess.run(
        [LLMASOS, "run", "--url", url, "--audio", str(recording), "--voice-file", str(out),
         "-n", "8", "--temperature", "0"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert heard(SENTENCE, done.stdout.splitlines()[0]) >= 0.8  # the transcript is the prompt
    assert f"spoken into {out}" in done.stderr
    with wave.open(str(out)) as wav:
        assert wav.getnframes() > 0


def test_a_small_file_that_decodes_past_the_length_limit_is_refused_early(url, tmp_path):
    """31 minutes of silence as FLAC: a few kilobytes, 60 MB of samples; refused by length."""
    path = tmp_path / "long.flac"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=8000, layout="mono")
        frame_samples = 8000
        for n in range(31 * 60):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, frame_samples), dtype=np.int16), format="s16", layout="mono"
            )
            frame.sample_rate, frame.pts = 8000, n * frame_samples
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert path.stat().st_size < 1_000_000
    files = {"file": ("long.flac", path.read_bytes())}
    reply = httpx.post(f"{url}/v1/audio/transcriptions", files=files,
                       data={"model": "whisper-1"}, timeout=300)  # fmt: skip
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["param"] == "file" and "1800 s" in reply.text

"""Speech: how well and how fast `llmasos serve` hears and speaks, through its /v1/audio routes.

Twelve fixed English sentences, each spoken by espeak-ng outside the server in two voices (its
`en-us` voice, which `alloy` maps to, and its default `en`), are transcribed by Whisper base
(POST /v1/audio/transcriptions, model whisper-1); then the server speaks each sentence itself
(POST /v1/audio/speech, mp3) and transcribes its own audio back. Per case: the word error rate
(words substituted, dropped or added over the words said, case and punctuation aside), the
share of sentences heard word for word, seconds per sentence and the real-time factor (seconds
of work per second of audio). Nothing is normalised: Whisper's "7.15" for "seven fifteen" or
"riverbank" for "river bank" count as errors. There is no baseline server with speech routes
on this machine: the figures stand alone.

    .venv/bin/python bench/speech.py
Writes bench/results/speech.json and .png.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.report import bar_plot, report_header, write_report
from report import arguments

SENTENCES = [
    "Please schedule the meeting with the engineering team for Thursday afternoon.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Turn off the lights in the kitchen before you go to bed.",
    "The train to Boston leaves at seven fifteen from platform four.",
    "Remember to water the plants on the balcony every morning.",
    "Our quarterly revenue grew by twelve percent compared with last year.",
    "The library closes early on Sundays during the summer months.",
    "She painted the fence a bright shade of yellow last weekend.",
    "Send the final report to the whole department by Friday noon.",
    "A cold wind blew across the empty parking lot all night.",
    "The doctor asked him to rest and drink plenty of water.",
    "We need three more chairs for the guests in the dining room.",
]
VOICES = {"espeak-ng en-us": "en-us", "espeak-ng default (en)": "en"}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def errors(said: list[str], heard: list[str]) -> int:
    """Word-level edit distance."""
    row = list(range(len(heard) + 1))
    for i, word in enumerate(said, start=1):
        previous, row[0] = row[0], i
        for j, other in enumerate(heard, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1]


def transcribe(client: httpx.Client, audio: bytes, name: str) -> tuple[str, float]:
    began = time.perf_counter()
    reply = client.post(
        "/v1/audio/transcriptions", files={"file": (name, audio)}, data={"model": "whisper-1"}
    )
    reply.raise_for_status()
    return reply.json()["text"], time.perf_counter() - began


def audio_seconds(wav: bytes) -> float:
    """A WAV's length (espeak-ng's streamed WAV has no sizes: counted from the data)."""
    rate = int.from_bytes(wav[24:28], "little")
    return (len(wav) - wav.find(b"data") - 8) / 2 / rate


def case(client: httpx.Client, spoken: list[tuple[bytes, str, float]]) -> dict[str, object]:
    """Each (audio, file name, seconds of audio) transcribed: its figures."""
    wrong = total = exact = 0
    took = audio = 0.0
    samples = []
    for (data, name, seconds), sentence in zip(spoken, SENTENCES, strict=True):
        text, elapsed = transcribe(client, data, name)
        said, heard = words(sentence), words(text)
        wrong, total = wrong + errors(said, heard), total + len(said)
        exact += said == heard
        took, audio = took + elapsed, audio + seconds
        samples.append({"said": sentence, "heard": text.strip(), "seconds": round(elapsed, 3)})
    return {
        "word_error_rate": round(wrong / total, 4),
        "sentences_exact": exact / len(SENTENCES),
        "seconds_per_sentence": round(took / len(SENTENCES), 3),
        "real_time_factor": round(took / audio, 3),
        "samples": samples,
    }


def main() -> None:
    args = arguments(__doc__, repeats=None).parse_args()
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng")
    report = report_header("speech", __doc__.split("\n\n")[1], Path("whisper-base:f16"))
    cases: dict[str, dict[str, object]] = {}
    with (
        llmasos_server(slots=2, context=1024, threads=2) as url,
        httpx.Client(base_url=url, timeout=600) as client,
    ):
        for label, voice in VOICES.items():
            spoken = []
            with tempfile.TemporaryDirectory() as folder:
                for n, sentence in enumerate(SENTENCES):
                    path = Path(folder) / f"{n}.wav"
                    subprocess.run([espeak, "-v", voice, "-w", str(path), sentence], check=True)
                    data = path.read_bytes()
                    spoken.append((data, path.name, audio_seconds(data)))
            if not cases:  # the first call imports and loads the model: not counted
                transcribe(client, spoken[0][0], "warm.wav")
            cases[label] = case(client, spoken)
        served, speaking = [], 0.0
        for sentence in SENTENCES:
            began = time.perf_counter()
            body = {"model": "tts-1", "voice": "alloy", "input": sentence, "response_format": "wav"}
            wav = client.post("/v1/audio/speech", json=body).content
            speaking += time.perf_counter() - began
            served.append((wav, "served.wav", audio_seconds(wav)))
        cases["this server's own speech (alloy)"] = case(client, served)
    report["speech_out_seconds_per_sentence"] = round(speaking / len(SENTENCES), 3)
    report["cases"] = cases
    write_report(args.out / "speech.json", report)
    bar_plot(
        args.out / "speech.png",
        groups=list(cases),
        series={
            "word error rate": [c["word_error_rate"] for c in cases.values()],
            "real-time factor": [c["real_time_factor"] for c in cases.values()],
        },
        title="Whisper base through /v1/audio/transcriptions on 2 CPU threads (lower is better)",
    )


if __name__ == "__main__":
    main()

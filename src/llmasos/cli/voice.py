"""Speech around `llmasos run`: `--audio FILE` takes the prompt from a recording, `--voice`
speaks the continuation (played by the first of aplay, paplay or ffplay found, or written to
`--voice-file`). With a server, its /v1/audio routes do the speech; in-process, this process
does, with the same models."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx

from llmasos.errors import InvalidRequestError, LLMasOSError
from llmasos.remote import raise_for_error

PLAYERS = (["aplay", "-q"], ["paplay"], ["ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"])
TIMEOUT_S = 600


class Voice:
    """Speech for one run: through the server at `url`, or here when `url` is None."""

    def __init__(self, url: str | None, api_key: str | None) -> None:
        self.url = url.rstrip("/") if url else None
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def transcript(self, path: Path) -> str:
        if not path.is_file():
            raise InvalidRequestError("--audio", f"{path} is not a file")
        if self.url is None:
            from llmasos.models.repository import Repository
            from llmasos.settings import Settings
            from llmasos.speech.transcriber import Transcriber
            from llmasos.speech.whisper_model import ensure_whisper_model, unpacked

            repository = Repository(Settings.from_environment().home / "models")
            folder = unpacked(repository, ensure_whisper_model(repository))
            return Transcriber(folder).transcribe(path.read_bytes()).text
        files = {"file": (path.name, path.read_bytes())}
        reply = self._post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"})
        return str(reply.json()["text"])

    def speech(self, text: str) -> bytes:
        """The text spoken, as WAV."""
        if self.url is None:
            from llmasos.speech.synthesis import speak

            return speak(text, response_format="wav").audio
        body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav"}
        return self._post("/v1/audio/speech", json=body).content

    def _post(self, path: str, **request: object) -> httpx.Response:
        reply = httpx.post(f"{self.url}{path}", headers=self.headers, timeout=TIMEOUT_S, **request)  # type: ignore[arg-type]
        raise_for_error(reply)
        return reply


def play_or_keep(wav: bytes, keep: Path | None) -> str:
    """Play the audio, or write it to `keep` (or when no player is found, to a file here);
    what became of it."""
    player = next((p for p in PLAYERS if shutil.which(p[0])), None)
    if keep is None and player is not None:
        with tempfile.NamedTemporaryFile(suffix=".wav") as file:
            file.write(wav)
            file.flush()
            if subprocess.run([*player, file.name], check=False).returncode == 0:
                return f"spoken through {player[0]}"
    target = keep or Path("llmasos-voice.wav")
    try:
        target.write_bytes(wav)
    except OSError as error:
        raise LLMasOSError(f"--voice-file: cannot write {target}: {error}") from error
    return f"spoken into {target}" + ("" if keep else " (no audio player found)")

"""OpenAI's audio routes: POST /v1/audio/transcriptions (speech to text: Whisper base from the
repository, through faster-whisper) and POST /v1/audio/speech (text to speech: espeak-ng).

`whisper-1` (what OpenAI's clients send) selects whisper-base:f16, imported from its PyPI
packages on first use; `tts-1`, `tts-1-hd` and `gpt-4o-mini-tts` select espeak-ng. The
server's body limit (8 MiB unless --max-body-bytes says otherwise) bounds an upload first.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from llmasos.errors import InvalidRequestError, UnprocessableError
from llmasos.models.manifest import full_name
from llmasos.models.repository import Repository
from llmasos.server.schemas import MODEL_NAME_PATTERN
from llmasos.speech.subtitles import as_srt, as_vtt
from llmasos.speech.synthesis import (
    FASTEST,
    MAX_INPUT_CHARS,
    MEDIA_TYPES,
    SLOWEST,
    SPEECH_MODELS,
    VOICES,
    speak,
)
from llmasos.speech.transcriber import MAX_PROMPT_CHARS, Transcriber, Transcript
from llmasos.speech.whisper_model import (
    FORMAT,
    WHISPER_ALIASES,
    WHISPER_MODEL,
    ensure_whisper_model,
    unpacked,
)

router = APIRouter()
_starting = threading.Lock()
TranscriptFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]


class SpeechRequest(BaseModel):
    """POST /v1/audio/speech, as OpenAI's, within what espeak-ng does (its voices, formats
    and rates: a speed of 0.46 to 2.57 where OpenAI allows 0.25 to 4)."""

    model: Literal[SPEECH_MODELS]  # type: ignore[valid-type]
    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)
    voice: Literal[tuple(VOICES)]  # type: ignore[valid-type]
    response_format: Literal[tuple(MEDIA_TYPES)] = "mp3"  # type: ignore[valid-type]
    speed: float = Field(1.0, ge=SLOWEST, le=FASTEST)
    instructions: str | None = Field(None, max_length=MAX_INPUT_CHARS)  # espeak-ng: ignored


@router.post("/v1/audio/transcriptions", response_model=None)
async def transcriptions(
    request: Request,
    *,
    file: Annotated[UploadFile, File(description="The audio (wav, mp3, flac, ogg, m4a...)")],
    model: Annotated[str, Form(min_length=1, max_length=129, pattern=MODEL_NAME_PATTERN)],
    language: Annotated[str | None, Form(max_length=8)] = None,
    prompt: Annotated[str | None, Form(max_length=MAX_PROMPT_CHARS)] = None,
    response_format: Annotated[TranscriptFormat, Form()] = "json",
    temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
    granularities: Annotated[
        list[Literal["segment", "word"]],
        Form(alias="timestamp_granularities[]", max_length=2, default_factory=lambda: ["segment"]),
    ],
) -> Response | dict[str, Any]:
    if "word" in granularities:
        raise UnprocessableError(
            "timestamp_granularities", "only segment timestamps are given here (no word ones)"
        )
    name = WHISPER_MODEL if model in WHISPER_ALIASES else _model_name(model)
    request.state.capabilities.check_model(name)
    transcriber = await run_in_threadpool(_transcriber, request, name)
    audio = await file.read()
    transcript = await run_in_threadpool(
        transcriber.transcribe, audio, language=language, prompt=prompt, temperature=temperature
    )
    return _formatted(transcript, response_format)


@router.post(
    "/v1/audio/speech",
    response_class=Response,
    responses={200: {"content": {m: {} for m in ("audio/mpeg", "audio/wav", "audio/pcm")}}},
)
async def speech(body: SpeechRequest, request: Request) -> Response:
    request.state.capabilities.check_model(body.model)
    spoken = await run_in_threadpool(
        speak, body.input, body.voice, body.speed, body.response_format
    )
    return Response(spoken.audio, media_type=spoken.media_type)


def _model_name(model: str) -> str:
    try:
        return full_name(model)
    except InvalidRequestError as error:
        raise InvalidRequestError("model", error.reason) from None


def _transcriber(request: Request, name: str) -> Transcriber:
    """The model's transcriber, made on first use (blocking: the first imports and unpacks)."""
    state = request.app.state
    with _starting:
        cache: dict[str, Transcriber] | None = getattr(state, "transcribers", None)
        if cache is None:
            cache = state.transcribers = {}
        if name not in cache:
            repository: Repository | None = state.models.repository
            if repository is None:
                raise UnprocessableError("model", "this server has no model repository")
            manifest = ensure_whisper_model(repository) if name == WHISPER_MODEL else None
            manifest = manifest or repository.show(name)
            if manifest.format != FORMAT:
                raise UnprocessableError("model", f"{name} is not a speech-to-text model")
            cache[name] = Transcriber(unpacked(repository, manifest))
        return cache[name]


def _formatted(transcript: Transcript, response_format: str) -> Response | dict[str, Any]:
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(as_srt(transcript.segments))
    if response_format == "vtt":
        return PlainTextResponse(as_vtt(transcript.segments), media_type="text/vtt")
    if response_format == "json":
        return {"text": transcript.text}
    segments = [
        {"id": s.id, "start": s.start, "end": s.end, "text": s.text,
         "avg_logprob": s.avg_logprob, "no_speech_prob": s.no_speech_prob}
        for s in transcript.segments
    ]  # fmt: skip
    return {
        "task": "transcribe", "language": transcript.language, "duration": transcript.duration,
        "text": transcript.text, "segments": segments,
    }  # fmt: skip

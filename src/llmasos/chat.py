"""Chat messages to a prompt.

A model whose GGUF carries `tokenizer.chat_template` is prompted with that Jinja template, as
llama.cpp's server does. A model without one (the default model is a base model and has none)
gets the documented fallback, a plain transcript that a base model continues naturally:

    <system message>

    User: <message>

    Assistant: <message>

    User: <message>

    Assistant:

with "\\nUser:" as an extra stop string, so the reply ends where the model starts the user's turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmasos.engine.base import EngineInfo
from llmasos.errors import InvalidRequestError
from llmasos.sampling import merge_stops

ROLES = ("system", "user", "assistant")
FALLBACK_STOP = "\nUser:"


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class ChatPrompt:
    text: str
    stop: tuple[str, ...]  # stop strings the format itself needs


def check_messages(messages: object) -> list[ChatMessage]:
    """Validate untrusted messages: a non-empty list of {role, content} with known roles."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("messages", "must be a non-empty list of messages")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(f"messages[{i}]", "must be an object with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidRequestError(f"messages[{i}].role", f"must be one of {list(ROLES)}")
        if not isinstance(content, str):
            raise InvalidRequestError(f"messages[{i}].content", "must be a string")
        checked.append(ChatMessage(role, content))
    return checked


def chat_spawn_args(
    messages: object, stop: object, info: EngineInfo
) -> tuple[str, list[str] | None]:
    """(prompt, stop strings) for a chat request: its rendered messages, and the caller's stop
    strings plus those the format needs."""
    prompt = render_chat(check_messages(messages), info)
    return prompt.text, merge_stops(stop, prompt.stop)


def render_chat(messages: Sequence[ChatMessage], info: EngineInfo) -> ChatPrompt:
    """The prompt for `messages`, ending where the assistant's reply begins."""
    if info.chat_template:
        return ChatPrompt(_render_template(messages, info), ())
    return ChatPrompt(_render_fallback(messages), (FALLBACK_STOP,))


def _render_fallback(messages: Sequence[ChatMessage]) -> str:
    parts = []
    for message in messages:
        if message.role == "system":
            parts.append(message.content)
        else:
            parts.append(f"{message.role.capitalize()}: {message.content}")
    parts.append("Assistant:")
    return "\n\n".join(parts)


def _render_template(messages: Sequence[ChatMessage], info: EngineInfo) -> str:
    def raise_exception(message: str) -> None:
        raise InvalidRequestError("messages", f"the model's chat template refused them: {message}")

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        text = environment.from_string(info.chat_template or "").render(
            messages=[{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True,
            bos_token=info.bos_token,
            eos_token=info.eos_token,
            raise_exception=raise_exception,
        )
    except TemplateError as error:
        raise InvalidRequestError(
            "messages", f"the model's chat template failed: {error}"
        ) from error
    # The tokenizer adds the start token itself; a template that writes it too would double it.
    if info.bos_token and text.startswith(info.bos_token):
        text = text[len(info.bos_token) :]
    return text

"""Chat messages to a prompt.

A model whose GGUF carries `tokenizer.chat_template` is prompted with that Jinja template, as
llama.cpp's server does (it receives the messages, tool calls included, and `tools`). A model
without one (the default model is a base model and has none) gets the documented fallback, a
plain transcript that a base model continues naturally:

    <system message>

    <the tools, described as in toolcalls.tools_prompt, when the request has tools>

    User: <message>

    Assistant: <message, or its calls: <tool_call>{...}</tool_call>, one per line>

    Tool result (<tool call id>): <content>

    Assistant:

with "\\nUser:" as an extra stop string, so the reply ends where the model starts the user's turn.
Roles: system (and OpenAI's newer "developer", read as system), user, assistant, tool. Content
is a string, or a list of {"type": "text", "text": ...} parts (joined); an assistant message
with tool calls may have none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmasos.engine.base import EngineInfo
from llmasos.errors import InvalidRequestError, UnprocessableError
from llmasos.sampling import merge_stops
from llmasos.toolcalls import FunctionTool, ToolCall, tools_prompt

ROLES = ("system", "developer", "user", "assistant", "tool")
FALLBACK_STOP = "\nUser:"


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant's calls
    tool_call_id: str | None = None  # a tool message: the call it answers

    def as_openai(self) -> dict[str, Any]:
        """The message as a chat template receives it."""
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


@dataclass(frozen=True)
class ChatPrompt:
    text: str
    stop: tuple[str, ...]  # stop strings the format itself needs


def check_messages(messages: object) -> list[ChatMessage]:
    """Validate untrusted messages: a non-empty list of {role, content} with known roles (see
    the module docstring), naming the first field at fault."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("messages", "must be a non-empty list of messages")
    return [_check_message(f"messages[{i}]", m) for i, m in enumerate(messages)]


def _check_message(field: str, message: object) -> ChatMessage:
    if not isinstance(message, dict):
        raise InvalidRequestError(field, "must be an object with role and content")
    role = message.get("role")
    if role not in ROLES:
        raise InvalidRequestError(f"{field}.role", f"must be one of {list(ROLES)}")
    calls = (
        _check_calls(f"{field}.tool_calls", message.get("tool_calls"))
        if role == "assistant"
        else ()
    )
    content = _content(f"{field}.content", message.get("content"), optional=role == "assistant")
    call_id = message.get("tool_call_id")
    if role == "tool" and not isinstance(call_id, str):
        raise InvalidRequestError(f"{field}.tool_call_id", "a tool message needs the call's id")
    return ChatMessage("system" if role == "developer" else role, content, calls, call_id)


def _content(field: str, content: object, *, optional: bool) -> str:
    if content is None and optional:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "".join(p["text"] for p in content)
    raise InvalidRequestError(field, 'must be a string or a list of {"type": "text"} parts')


def _check_calls(field: str, calls: object) -> tuple[ToolCall, ...]:
    if calls is None:
        return ()
    if not isinstance(calls, list):
        raise InvalidRequestError(field, "must be a list of tool calls")
    checked = []
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequestError(f"{field}[{i}].function", "must have a name")
        arguments = function.get("arguments", "{}")
        try:
            if not isinstance(json.loads(arguments), dict):
                raise ValueError("not an object")
        except (TypeError, ValueError):
            raise UnprocessableError(
                f"{field}[{i}].function.arguments", "must be a JSON object as a string"
            ) from None
        checked.append(ToolCall(str(call.get("id", f"call-{i}")), function["name"], arguments))
    return tuple(checked)


def chat_spawn_args(
    messages: object, stop: object, info: EngineInfo
) -> tuple[str, list[str] | None]:
    """(prompt, stop strings) for a chat request: its rendered messages, and the caller's stop
    strings plus those the format needs."""
    prompt = render_chat(check_messages(messages), info)
    return prompt.text, merge_stops(stop, prompt.stop)


def render_chat(
    messages: Sequence[ChatMessage], info: EngineInfo, tools: Sequence[FunctionTool] = ()
) -> ChatPrompt:
    """The prompt for `messages` (and the tools the reply may call), ending where the
    assistant's reply begins."""
    if info.chat_template:
        return ChatPrompt(_render_template(messages, info, tools), ())
    return ChatPrompt(_render_fallback(messages, tools), (FALLBACK_STOP,))


def _render_fallback(messages: Sequence[ChatMessage], tools: Sequence[FunctionTool]) -> str:
    parts = [m.content for m in messages if m.role == "system"]
    if tools:
        parts.append(tools_prompt(list(tools)))
    for message in messages:
        if message.role == "user":
            parts.append(f"User: {message.content}")
        elif message.role == "assistant":
            calls = "\n".join(call.text() for call in message.tool_calls)
            parts.append(f"Assistant: {message.content}{calls}")
        elif message.role == "tool":
            parts.append(f"Tool result ({message.tool_call_id}): {message.content}")
    parts.append("Assistant:")
    return "\n\n".join(parts)


def _render_template(
    messages: Sequence[ChatMessage], info: EngineInfo, tools: Sequence[FunctionTool]
) -> str:
    def raise_exception(message: str) -> None:
        raise InvalidRequestError("messages", f"the model's chat template refused them: {message}")

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        text = environment.from_string(info.chat_template or "").render(
            messages=[m.as_openai() for m in messages],
            tools=[t.as_openai() for t in tools] or None,
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

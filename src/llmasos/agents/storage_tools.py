"""The declarative loop's storage tools: files and memory through the agent's own syscalls
(ctx.fs, ctx.memory), so a spec's agent keeps its work between runs.

    read_file {path, start}      up to 4000 characters from `start`, labelled with the range
    write_file {path, content}   a new version; its number
    list_files {prefix}          paths and versions
    remember {text}              into archival memory
    recall {query, k}            the nearest archival entries
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from llmasos.toolcalls import FunctionTool

if TYPE_CHECKING:
    from llmasos.agents.context import AgentContext

READ_CHARS = 4000
PATH = {"type": "string", "minLength": 1, "maxLength": 1024}


def _tool(name: str, description: str, properties: dict, required: list[str]) -> FunctionTool:
    schema = {"type": "object", "properties": properties, "required": required,
              "additionalProperties": False}  # fmt: skip
    return FunctionTool(name, description, schema)


STORAGE_TOOLS = {
    "read_file": _tool(
        "read_file", f"Reads a file of yours (or one shared with you): {READ_CHARS} characters "
        "from `start`.", {"path": PATH, "start": {"type": "integer", "minimum": 0}}, ["path"],
    ),
    "write_file": _tool(
        "write_file", "Writes a file (a new version; older ones are kept).",
        {"path": PATH, "content": {"type": "string", "maxLength": 16000}}, ["path", "content"],
    ),
    "list_files": _tool(
        "list_files", "Lists your files under a folder ('' for all).",
        {"prefix": {"type": "string", "maxLength": 1024}}, [],
    ),
    "remember": _tool(
        "remember", "Keeps a fact in your long-term memory.",
        {"text": {"type": "string", "minLength": 1, "maxLength": 4000}}, ["text"],
    ),
    "recall": _tool(
        "recall", "Searches your long-term memory by meaning.",
        {"query": {"type": "string", "minLength": 1, "maxLength": 4000},
         "k": {"type": "integer", "minimum": 1, "maximum": 10}}, ["query"],
    ),
}  # fmt: skip


def storage_tool(ctx: AgentContext, name: str, arguments: dict) -> str:
    """The observation of one storage tool call (errors propagate to the caller)."""
    if name == "read_file":
        text = ctx.fs.read(arguments["path"]).decode("utf-8", "replace")
        start = arguments.get("start", 0)
        end = min(len(text), start + READ_CHARS)
        return f"(characters {start}-{end} of {len(text)})\n{text[start:end]}"
    if name == "write_file":
        return f"version {ctx.fs.write(arguments['path'], arguments['content'])}"
    if name == "list_files":
        found = ctx.fs.list(arguments.get("prefix", ""))
        return json.dumps([{"path": f.path, "version": f.version, "size": f.size} for f in found])
    if name == "remember":
        ctx.memory.store(arguments["text"])
        return "remembered"
    hits = ctx.memory.search(arguments["query"], arguments.get("k", 3))
    return json.dumps([hit.text for hit in hits])

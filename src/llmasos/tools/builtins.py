"""The built-in tools: `calculator` (arithmetic, evaluated here without running code) and
`python` (a program run in the sandbox; its stdout is the result), and executable_tool() for
any program as a tool (run in the sandbox too)."""

from __future__ import annotations

import ast
import json
import math
import operator
import os
import sys
from collections.abc import Callable
from typing import Any

from llmasos.errors import InvalidRequestError
from llmasos.tools.registry import Tool, ToolFailure
from llmasos.tools.sandbox import SandboxLimits, run_sandboxed

MAX_EXPRESSION = 1000
MAX_CODE = 64 * 1024
MAX_INTEGER_BITS = 4096  # larger integers are refused, not computed
PYTHON = os.path.realpath(sys.executable)  # the interpreter itself, not a venv's link to it

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    **{n: getattr(math, n) for n in ("sqrt", "exp", "log", "log10", "sin", "cos", "tan")},
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression: numbers, + - * / // % **, parentheses, pi, e and
    abs, round, min, max, sqrt, exp, log, log10, sin, cos, tan."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise ToolFailure(f"expression: not arithmetic ({error.msg})") from None
    try:
        return _evaluate(tree.body)
    except (ArithmeticError, ValueError, TypeError) as error:
        raise ToolFailure(f"expression: {type(error).__name__}: {error}") from None


def _evaluate(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        too_big = abs(right) * math.log2(abs(left) + 2) > MAX_INTEGER_BITS
        if isinstance(node.op, ast.Pow) and too_big:
            raise ToolFailure(f"expression: the power is beyond {MAX_INTEGER_BITS} bits")
        return _bounded(_BINARY[type(node.op)](left, right))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _bounded(_FUNCTIONS[node.func.id](*(_evaluate(a) for a in node.args)))
    raise ToolFailure(f"expression: {ast.unparse(node)!r} is not allowed (arithmetic only)")


def _bounded(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INTEGER_BITS:
        raise ToolFailure(f"expression: a value is beyond {MAX_INTEGER_BITS} bits")
    return value


def python_tool(limits: SandboxLimits | None = None) -> Tool:
    """The `python` tool: runs `code` with this Python in the sandbox (no network, a scratch
    directory, the limits); returns its stdout, or an error result naming the limit it hit or
    ending with its traceback."""
    limits = limits or SandboxLimits()

    def run_python(code: str) -> str:
        return sandboxed_output([PYTHON, "-I", "-"], code, limits, shown=(sys.base_prefix,))

    parameters = {
        "type": "object",
        "properties": {"code": {"type": "string", "minLength": 1, "maxLength": MAX_CODE}},
        "required": ["code"],
        "additionalProperties": False,
    }
    description = "Runs a Python program; the result is what it prints."
    return Tool("python", description, parameters, run_python)


def executable_tool(
    name: str,
    argv: list[str],
    *,
    description: str = "",
    parameters: dict[str, Any] | None = None,
    limits: SandboxLimits | None = None,
) -> Tool:
    """A program as a tool: it runs in the sandbox with the call's arguments as one JSON object
    on its stdin, and its stdout is the result (an error result when it exits non-zero or hits
    a limit)."""
    if not argv or not all(isinstance(part, str) and part for part in argv):
        raise InvalidRequestError("argv", "must be a non-empty list of non-empty strings")
    limits = limits or SandboxLimits()

    def run_program(**arguments: Any) -> str:
        return sandboxed_output(list(argv), json.dumps(arguments), limits)

    schema = parameters if parameters is not None else {"type": "object"}
    return Tool(name, description, schema, run_program)


def sandboxed_output(
    argv: list[str], stdin: str, limits: SandboxLimits, *, shown: tuple[str, ...] = ()
) -> str:
    """What `argv` prints, run in the sandbox; ToolFailure naming the limit it hit, or its exit
    code and the end of its stderr."""
    result = run_sandboxed(argv, stdin=stdin, limits=limits, shown=shown)
    if result.limit is not None:
        raise ToolFailure(f"the program hit its {result.limit} limit and was stopped")
    if result.exit_code != 0:
        raise ToolFailure(f"exit code {result.exit_code}: {result.stderr.strip()[-2000:]}")
    return result.stdout


def calculator_tool() -> Tool:
    parameters = {
        "type": "object",
        "properties": {
            "expression": {"type": "string", "minLength": 1, "maxLength": MAX_EXPRESSION}
        },
        "required": ["expression"],
        "additionalProperties": False,
    }
    return Tool("calculator", "Evaluates an arithmetic expression.", parameters, calculate)


def builtin_tools(limits: SandboxLimits | None = None) -> list[Tool]:
    return [calculator_tool(), python_tool(limits)]

"""LLMasOS: an operating system for LLM work.

import llmasos
with llmasos.Client() as client:
    print(client.generate_text("The three laws of robotics are", max_tokens=64))
"""

from llmasos.client import Client, ProcessHandle, ProcessInfo
from llmasos.errors import (
    ContextLengthError,
    EngineError,
    InvalidRequestError,
    KernelBusyError,
    KernelClosedError,
    LLMasOSError,
    NoSuchProcessError,
    ProcessError,
    ProcessTerminatedError,
    UnknownModelError,
)
from llmasos.kernel.process import FinishReason, ProcessState, Result, Timings, Usage

__all__ = [
    "Client",
    "ContextLengthError",
    "EngineError",
    "FinishReason",
    "InvalidRequestError",
    "KernelBusyError",
    "KernelClosedError",
    "LLMasOSError",
    "NoSuchProcessError",
    "ProcessError",
    "ProcessHandle",
    "ProcessInfo",
    "ProcessState",
    "ProcessTerminatedError",
    "Result",
    "Timings",
    "UnknownModelError",
    "Usage",
]

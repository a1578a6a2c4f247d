"""LLMasOS: an operating system for LLM work.

import llmasos
with llmasos.Client() as client:
    print(client.generate_text("The three laws of robotics are", max_tokens=64))
"""

from llmasos.auth.capabilities import Capabilities
from llmasos.client import Client
from llmasos.errors import (
    AuthenticationError,
    CapabilityError,
    ConflictError,
    ContextLengthError,
    EngineError,
    FileNotFoundInStoreError,
    IncompleteOutputError,
    IntegrityError,
    InvalidRequestError,
    KernelBusyError,
    KernelClosedError,
    LLMasOSError,
    MemoryBudgetError,
    ModelBusyError,
    ModelError,
    ModelExistsError,
    ModelFileError,
    NoSuchProcessError,
    PermissionDeniedError,
    ProcessError,
    ProcessTerminatedError,
    QuotaExceededError,
    StorageError,
    StorageQuotaError,
    UnknownModelError,
)
from llmasos.handles import ProcessHandle
from llmasos.kernel.process import FinishReason, ProcessInfo, ProcessState, Result, Timings, Usage
from llmasos.runtime.handle import ModelHandle, load_model

__all__ = [
    "AuthenticationError",
    "Capabilities",
    "CapabilityError",
    "Client",
    "ConflictError",
    "ContextLengthError",
    "EngineError",
    "FileNotFoundInStoreError",
    "FinishReason",
    "IncompleteOutputError",
    "IntegrityError",
    "InvalidRequestError",
    "KernelBusyError",
    "KernelClosedError",
    "LLMasOSError",
    "MemoryBudgetError",
    "ModelBusyError",
    "ModelError",
    "ModelExistsError",
    "ModelFileError",
    "ModelHandle",
    "NoSuchProcessError",
    "PermissionDeniedError",
    "ProcessError",
    "ProcessHandle",
    "ProcessInfo",
    "ProcessState",
    "ProcessTerminatedError",
    "QuotaExceededError",
    "Result",
    "StorageError",
    "StorageQuotaError",
    "Timings",
    "UnknownModelError",
    "Usage",
    "load_model",
]

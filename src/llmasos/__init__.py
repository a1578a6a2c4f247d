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
from llmasos.jobs.sdk import (
    cancel_task,
    delete_task,
    get_task_status,
    resume_task,
    submit_task,
    suspend_task,
)
from llmasos.jobs.tasks import DP, TaskState, TaskStatus, TrainingTask
from llmasos.kernel.process import FinishReason, ProcessInfo, ProcessState, Result, Timings, Usage
from llmasos.runtime.handle import ModelHandle, load_model

__all__ = [
    "DP",
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
    "TaskState",
    "TaskStatus",
    "Timings",
    "TrainingTask",
    "UnknownModelError",
    "Usage",
    "cancel_task",
    "delete_task",
    "get_task_status",
    "load_model",
    "resume_task",
    "submit_task",
    "suspend_task",
]

"""The one exception tree of LLMasOS.

    LLMasOSError                      base of everything LLMasOS raises on purpose
    ├── InvalidRequestError           a field is missing, of the wrong type or out of range
    │   ├── ContextLengthError        the prompt plus max_tokens cannot fit in the context
    │   └── UnprocessableError        well formed, but beyond what this model can take
    ├── UnknownModelError             a model name that is neither loaded nor known
    ├── ModelError                    the model repository refused an operation
    │   ├── ModelFileError            a file that is not a complete GGUF model
    │   ├── ModelExistsError          a name already taken
    │   ├── ModelBusyError            unloading a model that has live processes or calls
    │   ├── ModelPinnedError          unloading or deleting the model a server was started with
    │   ├── ModelInUseError           removing a model that LoRA adapters run over
    │   └── MemoryBudgetError         a model that cannot fit the memory budget now
    ├── ProcessError                  a signal or wait on a process that cannot take it
    │   ├── NoSuchProcessError        no process has that pid
    │   └── ProcessTerminatedError    the process already ended
    ├── AuthenticationError           the server refused the API key
    ├── PermissionDeniedError         the key may not do this (an administrative route)
    ├── UnknownKeyError               no stored API key has that id
    ├── KernelBusyError               too many live processes; retry later
    │   └── JobLimitError             too many jobs of one owner not ended yet
    ├── QuotaExceededError            the request needs more KV pages than its quota allows
    ├── KernelClosedError             the kernel was stopped; nothing new is accepted
    ├── SwapError                     a KV snapshot could not be read back from swap
    ├── StorageError                  the file system or agent memory refused an operation
    │   ├── FileNotFoundInStoreError  no such file (or version) at that path
    │   ├── ConflictError             a write with a stale expected_version (compare-and-swap)
    │   ├── PathExistsError           a move onto a path that holds a live file
    │   ├── StorageQuotaError         a write past the owner's storage quota
    │   └── IntegrityError            a stored record failed its check (tampered); not returned
    ├── IncompleteOutputError         structured output cut by max_tokens before it was complete
    ├── AgentError                    an agent failed, was killed, or hit a limit
    │   ├── AgentKilledError          the agent was killed while it ran
    │   └── AgentLimitError           the agent hit one of its limits (steps, tokens, wall time)
    ├── MessageError                  a message could not be delivered or received
    │   ├── MailboxFullError          the receiver's mailbox or the channel is full
    │   └── ReceiveTimeoutError       nothing arrived within the timeout
    ├── UnknownToolError              a tool name the registry does not hold
    ├── SandboxUnavailableError       this machine cannot sandbox tools (no bubblewrap)
    ├── ClusterUnavailableError       a service the cluster's replicas share did not answer
    ├── NotInstalledError             an optional part (speech) is not installed here
    └── EngineError                   the inference engine failed (load, decode, state restore)

Every error names the field (or object) at fault and, where there is one, the limit it broke, so
the message alone tells the user what to change.
"""

from __future__ import annotations


class LLMasOSError(Exception):
    """Base class of every error LLMasOS raises on purpose."""

    def __reduce__(self) -> tuple[object, ...]:  # whole across processes (a Ray replica's)
        return (_rebuilt, (type(self), self.args, dict(self.__dict__)))


def _rebuilt(kind: type[LLMasOSError], args: tuple, state: dict) -> LLMasOSError:
    error = kind.__new__(kind, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class InvalidRequestError(LLMasOSError, ValueError):
    """Raised when a request field is missing, has the wrong type or is out of range."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class UnprocessableError(InvalidRequestError):
    """Raised for a value that is well formed and within the API's bounds but that the model
    cannot take: top_k beyond its vocabulary, a constraint it cannot compile, an input longer
    than an embedding model reads (HTTP 422)."""


class ContextLengthError(InvalidRequestError):
    """Raised when prompt tokens plus max_tokens exceed the context a process may use."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context_length: int) -> None:
        super().__init__(
            "max_tokens",
            f"the prompt has {prompt_tokens} tokens and max_tokens is {max_tokens}; together "
            f"they must not exceed the context length of {context_length} tokens",
        )
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_length = context_length


class UnknownModelError(LLMasOSError, LookupError):
    """Raised when a model name is neither loaded nor known to the repository."""

    def __init__(self, name: str, known: list[str]) -> None:
        listing = ", ".join(known) if known else "none"
        super().__init__(f"model: unknown model {name!r}; known models: {listing}")
        self.name = name


class ModelError(LLMasOSError):
    """Raised when the model repository refuses an operation; the repository is unchanged."""


class ModelFileError(ModelError):
    """Raised for a file that is not a complete, readable GGUF model (or a failed download)."""

    def __init__(self, source: object, problem: str) -> None:
        super().__init__(f"source: {source} {problem}")
        self.source = str(source)


class ModelExistsError(ModelError):
    """Raised when importing or tagging to a name that already exists."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"name: {name!r} already exists; pick another name or remove it first "
            f"(llmasos models rm {name})"
        )
        self.name = name


class ModelBusyError(ModelError):
    """Raised when unloading a model that still has live processes."""

    def __init__(self, name: str, live: int) -> None:
        super().__init__(f"model: {name} has {live} live processes; kill them or wait")


class ModelPinnedError(ModelError):
    """Raised when unloading or deleting the model a server keeps loaded (its --model)."""

    def __init__(self, name: str, action: str) -> None:
        super().__init__(
            f"model: {name} is the model this server was started with; it cannot {action} it "
            "while serving (restart the server with another --model first)"
        )


class ModelInUseError(ModelError):
    """Raised when removing a model that LoRA adapters in the repository are built on."""

    def __init__(self, name: str, adapters: list[str]) -> None:
        listing = ", ".join(adapters)
        super().__init__(
            f"model: {name} is the base model of the adapters {listing}; remove them first "
            f"(llmasos models rm {adapters[0]})"
        )
        self.name = name
        self.adapters = adapters


class MemoryBudgetError(ModelError):
    """Raised when a model cannot fit the memory budget even after unloading idle models."""


class ProcessError(LLMasOSError):
    """Base class of errors about one process."""

    def __init__(self, pid: int, message: str) -> None:
        super().__init__(f"pid {pid}: {message}")
        self.pid = pid


class NoSuchProcessError(ProcessError, LookupError):
    """Raised when no process has the given pid."""

    def __init__(self, pid: int) -> None:
        super().__init__(pid, "no such process")


class NotYoursError(NoSuchProcessError):
    """Raised, as a plain 404, when the pid names another owner's process or agent: the
    caller learns nothing of it (the server audits the attempt)."""


class ProcessTerminatedError(ProcessError):
    """Raised when a signal is sent to a process that already ended."""

    def __init__(self, pid: int, signal: str) -> None:
        super().__init__(pid, f"cannot {signal}: the process has already terminated")
        self.signal = signal


class AuthenticationError(LLMasOSError):
    """Raised when an LLMasOS server refuses the API key (HTTP 401)."""


class PermissionDeniedError(LLMasOSError):
    """Raised when a key may not use a route (HTTP 403), e.g. an administrative one."""


class CapabilityError(PermissionDeniedError):
    """Raised when a process or agent asks for something outside its capabilities (HTTP 403):
    a model, tool, path or channel it was not given, or more than its parent holds."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"capabilities.{field}: {reason}")
        self.field = f"capabilities.{field}"


class RateLimitedError(LLMasOSError):
    """Raised when a key passes its request or token rate (HTTP 429, with Retry-After)."""

    def __init__(self, kind: str, per_minute: int, retry_after_s: int) -> None:
        super().__init__(
            f"rate limit: this key may make {per_minute} {kind} a minute; retry in "
            f"{retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


class UnknownObjectError(LLMasOSError, LookupError):
    """Raised when no batch file or batch of the caller's has the given id (HTTP 404)."""

    def __init__(self, field: str, object_id: str) -> None:
        super().__init__(f"{field}: no {field.removesuffix('_id')} has id {object_id!r}")
        self.field = field


class ObjectInUseError(LLMasOSError):
    """Raised when a batch file is deleted while a running batch reads it (HTTP 409)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class UnknownKeyError(LLMasOSError, LookupError):
    """Raised when no stored API key has the given id (HTTP 404)."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"key_id: no key has id {key_id!r}; see llmasos keys list")
        self.field = "key_id"


class KernelBusyError(LLMasOSError):
    """Raised when a spawn would exceed the kernel's limit of live processes."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the kernel already runs or queues {limit} processes (max_live_processes); "
            "retry when some have finished"
        )
        self.limit = limit


class JobLimitError(KernelBusyError):
    """Raised when an owner submits a job past its limit of jobs not ended (HTTP 429)."""

    def __init__(self, limit: int) -> None:
        LLMasOSError.__init__(
            self,
            f"task: this owner already has {limit} jobs queued, running or suspended (the most "
            "per owner); wait for one to end, or cancel one",
        )
        self.limit = limit
        self.field = "task"


class QuotaExceededError(LLMasOSError):
    """Raised when a process would need more KV pages than a quota ever allows."""

    def __init__(self, pages: int, limit: int, scope: str) -> None:
        super().__init__(
            f"max_tokens: the prompt plus max_tokens need {pages} KV pages; the {scope} quota "
            f"is {limit} pages; shorten the prompt or lower max_tokens"
        )
        self.pages = pages
        self.limit = limit


class KernelClosedError(LLMasOSError):
    """Raised when a request reaches a kernel that was stopped."""

    def __init__(self) -> None:
        super().__init__("the kernel is closed; create a new Client to continue")


class SwapError(LLMasOSError):
    """Raised when a KV snapshot cannot be read back from swap; the snapshot stays there."""


class StorageError(LLMasOSError):
    """Base class of file-system and agent-memory errors."""


class FileNotFoundInStoreError(StorageError, LookupError):
    """Raised when a path (or the asked version of it) does not exist, or was deleted."""

    def __init__(self, path: str, version: int | None = None) -> None:
        what = f"{path!r} has no version {version}" if version else f"no file at {path!r}"
        super().__init__(f"path: {what}")
        self.field = "path"


class ConflictError(StorageError):
    """Raised when a write names an expected_version that is no longer the latest: another
    writer got there first. Read the file again and retry with its version (HTTP 409)."""

    def __init__(self, path: str, expected: int, actual: int) -> None:
        super().__init__(
            f"expected_version: {path!r} is at version {actual}, not {expected}; read it again "
            "and write with that version"
        )
        self.field = "expected_version"
        self.expected = expected
        self.actual = actual


class PathExistsError(StorageError):
    """Raised when a move's destination holds a live file (HTTP 409); delete it first."""

    def __init__(self, field: str, path: str, version: int) -> None:
        super().__init__(
            f"{field}: {path!r} exists (version {version}); delete it first or pick another name"
        )
        self.field = field


class StorageQuotaError(StorageError):
    """Raised when a write would take an owner past its storage quota (history counts)."""

    def __init__(self, owner: str, used: int, adding: int, limit: int) -> None:
        super().__init__(
            f"data: owner {owner!r} stores {used} bytes; {adding} more would pass its quota of "
            f"{limit} bytes (old versions count: delete files to free space)"
        )
        self.field = "data"


class IntegrityError(StorageError):
    """Raised when a stored record fails its integrity check (a flipped byte, a record moved to
    another path, or another master key); the record is never returned."""


class IncompleteOutputError(LLMasOSError):
    """Raised by Client.generate_json when max_tokens ends the output before the JSON value."""


class AgentError(LLMasOSError):
    """Raised when an agent fails; waiting on it raises this with the agent's own error."""


class AgentKilledError(AgentError):
    """Raised inside an agent's syscalls once it was killed, and by waiting on it."""

    def __init__(self, pid: int) -> None:
        super().__init__(f"agent {pid}: killed")
        self.pid = pid


class AgentLimitError(AgentError):
    """Raised when an agent reaches one of its limits; the message names the limit."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(f"limits.{limit}: {message}")
        self.field = f"limits.{limit}"


class MessageError(LLMasOSError):
    """Base class of IPC failures (a message to a dead or unknown pid is NoSuchProcessError
    or ProcessTerminatedError, never a silent drop)."""


class MailboxFullError(MessageError):
    """Raised when a send finds the mailbox or channel at its capacity."""


class ReceiveTimeoutError(MessageError, TimeoutError):
    """Raised when recv(timeout=...) finds nothing in time."""


class UnknownToolError(LLMasOSError, LookupError):
    """Raised for a tool name that is not registered."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"tool: unknown tool {name!r}; registered: {', '.join(known) or 'none'}")
        self.field = "tool"


class SandboxUnavailableError(LLMasOSError):
    """Raised when a tool that runs code cannot be sandboxed on this machine."""


class ClusterUnavailableError(LLMasOSError):
    """Raised on a cluster replica when a service its pool shares (the rate ledger) does not
    answer: the request is refused rather than let past the shared limits (HTTP 503)."""

    def __init__(self, service: str) -> None:
        super().__init__(f"the cluster's {service} did not answer; retry shortly")
        self.service = service


class NotInstalledError(LLMasOSError):
    """A capability's optional part is missing here (the speech extra, espeak-ng): HTTP 501."""

    def __init__(self, what: str, install: str) -> None:
        super().__init__(f"{what} is not installed here; install it with: {install}")
        self.what = what


class EngineError(LLMasOSError):
    """Raised when the inference engine fails: model load, decode or state restore."""


def rebuild(cls: type[LLMasOSError], message: str, *, field: str | None = None) -> LLMasOSError:
    """An instance of `cls` carrying a message a server sent, so code that catches the class
    works the same against a server as in-process. Only the message (and, for bad requests,
    the field) survives the trip."""
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    if isinstance(error, InvalidRequestError):
        error.field = field or "request"
        error.reason = message
    return error

"""Capabilities: what a process or agent may touch, given at spawn and never widened by a child.

    models        model names it may call (the first is its default); None: any
    tools         tool names it may call; None: any registered tool
    read, write   file-system path prefixes ("notes", "~alice/shared"; "" is the agent's whole
                  namespace); None: whatever its principal may reach by ownership and grants.
                  Capabilities only narrow: a grant never lets an agent past them. A
                  principal's agent memory counts as its namespace's ".memory" folder
    channels      IPC channel names it may send to or receive from; None: any
    max_pages     KV pages one model call may reserve (prompt plus max_tokens)
    token_budget  tokens its model calls may compute in all (as AgentLimits.token_budget)

Besides, a server confines a caller that does not see everything (not an admin) to the shared
models and its own private ones (a model a user's training job made): `owner` and
`private_models` (the model repository) are set per request, never stored with a key, and
passed on to children as they are. Another owner's private model is refused with the very
error a name that does not exist gets.

A child names the capabilities it wants; what it leaves out it inherits. Asking for more than
its parent holds is a CapabilityError naming the field, not a silent cut. Relative path
prefixes are made absolute (~namespace/prefix) against the agent that first receives them,
so a child inherits its parent's paths, not the same words about its own namespace.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmasos.errors import CapabilityError, InvalidRequestError, UnknownModelError
from llmasos.models.default import canonical_model_name
from llmasos.storage.paths import PREFIX_REGEX, Location, Principal, is_under, locate

MAX_ENTRIES = 256
MEMORY_FOLDER = ".memory"  # where path capabilities place a principal's agent memory
MEMORY_WRITES = frozenset({"store", "store_many", "log", "forget", "index"})
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_LISTS = ("models", "tools", "read", "write", "channels")
_NUMBERS = ("max_pages", "token_budget")


class PrivateModels(Protocol):
    """Who owns which private model (the model repository answers)."""

    def owner_of(self, name: str) -> str | None:
        """The private model's owner; None for a shared model or an unknown name."""
        ...

    def unknown(self, name: str) -> UnknownModelError:
        """The error for a model name that does not exist."""
        ...


@dataclass(frozen=True)
class Capabilities:
    models: tuple[str, ...] | None = None
    tools: tuple[str, ...] | None = None
    read: tuple[str, ...] | None = None
    write: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    max_pages: int | None = None
    token_budget: int | None = None
    owner: str | None = field(default=None, compare=False)
    private_models: PrivateModels | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in _LISTS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str) or len(value) > MAX_ENTRIES:
                raise InvalidRequestError(
                    f"capabilities.{name}", f"must be a list of at most {MAX_ENTRIES} names"
                )
            object.__setattr__(self, name, tuple(dict.fromkeys(value)))
        for name in ("tools", "channels"):
            for entry in getattr(self, name) or ():
                if not isinstance(entry, str) or not _NAME.match(entry):
                    raise InvalidRequestError(
                        f"capabilities.{name}", f"{entry!r} is not 1-64 of A-Z a-z 0-9 _ . : -"
                    )
        for name in ("read", "write"):
            for entry in getattr(self, name) or ():
                if not isinstance(entry, str) or not re.match(PREFIX_REGEX, entry):
                    raise InvalidRequestError(
                        f"capabilities.{name}", f"{entry!r} is not a path prefix (notes, ~bob/x)"
                    )
        if self.models is not None:
            object.__setattr__(self, "models", tuple(canonical_model_name(m) for m in self.models))
        for name, high in (("max_pages", 10**9), ("token_budget", 10**9)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not 0 < value <= high):
                raise InvalidRequestError(f"capabilities.{name}", f"must be 1 to {high}")

    # -- giving them -----------------------------------------------------------------------

    def resolved(self, principal: Principal) -> Capabilities:
        """These capabilities with every path prefix absolute, as `principal` means them."""

        def absolute(prefixes: tuple[str, ...] | None, field: str) -> tuple[str, ...] | None:
            if prefixes is None:
                return None
            return tuple(_shown(locate(principal, p, field, allow_root=True)) for p in prefixes)

        return dataclasses.replace(
            self,
            read=absolute(self.read, "capabilities.read"),
            write=absolute(self.write, "capabilities.write"),
        )

    def narrowed(self, wanted: Capabilities | None) -> Capabilities:
        """What a child that asks for `wanted` gets: its fields, the rest inherited; raises
        CapabilityError if it asks for anything these do not hold."""
        if wanted is None:
            return self
        filled = {
            name: getattr(self, name) if getattr(wanted, name) is None else getattr(wanted, name)
            for name in (*_LISTS, *_NUMBERS)
        }
        child = Capabilities(**filled, owner=self.owner, private_models=self.private_models)
        child.check_within(self)
        return child

    def check_within(self, parent: Capabilities) -> None:
        """Raise CapabilityError naming the first field where these exceed `parent`."""
        for name in ("models", "tools", "channels"):
            mine, theirs = getattr(self, name), getattr(parent, name)
            if theirs is not None and (mine is None or set(mine) - set(theirs)):
                extra = "any" if mine is None else sorted(set(mine) - set(theirs))
                raise CapabilityError(name, f"asks for {extra}; the parent holds {list(theirs)}")
        for name in ("read", "write"):
            mine, theirs = getattr(self, name), getattr(parent, name)
            if theirs is not None and (mine is None or not all(_covered(p, theirs) for p in mine)):
                raise CapabilityError(
                    name, f"asks for {mine or 'any path'}; the parent holds {list(theirs)}"
                )
        for name in _NUMBERS:
            mine, theirs = getattr(self, name), getattr(parent, name)
            if theirs is not None and (mine is None or mine > theirs):
                wanted = mine or "no limit"
                raise CapabilityError(name, f"asks for {wanted}; the parent holds {theirs}")

    # -- checking a syscall ----------------------------------------------------------------

    def model_for(self, model: str | None) -> str | None:
        """The model a call asking for `model` (None: the default) runs on, if allowed."""
        if self.models is None:
            if model is not None:
                self.check_visible(model)
            return model
        if model is None:
            if not self.models:
                _refuse("models", "no model is allowed")
            self.check_visible(self.models[0])
            return self.models[0]
        self.check_model(model)
        return model

    def check_model(self, model: str) -> None:
        if self.models is not None and canonical_model_name(model) not in self.models:
            raise CapabilityError("models", f"{model} is not among {list(self.models)}")
        self.check_visible(model)

    def sees_model(self, model: str) -> bool:
        """False for another owner's private model (listings leave it out)."""
        if self.private_models is None:
            return True
        private_to = self.private_models.owner_of(canonical_model_name(model))
        return private_to is None or private_to == self.owner

    def check_visible(self, model: str) -> None:
        """Another owner's private model is refused as a name that does not exist is."""
        if not self.sees_model(model):
            assert self.private_models is not None
            raise self.private_models.unknown(model)

    def check_tool(self, name: str) -> None:
        if self.tools is not None and name not in self.tools:
            raise CapabilityError("tools", f"{name} is not among {list(self.tools)}")

    def check_channel(self, name: str) -> None:
        if self.channels is not None and name not in self.channels:
            raise CapabilityError("channels", f"{name} is not among {list(self.channels)}")

    def check_path(self, location: Location, write: bool) -> None:
        """Raise CapabilityError unless a read (or write) prefix covers `location`."""
        field = "write" if write else "read"
        prefixes = self.write if write else self.read
        if prefixes is not None and not _covered(_shown(location), prefixes):
            raise CapabilityError(field, f"{_shown(location)} is under none of {list(prefixes)}")

    def check_memory(self, principal: Principal, method: str, arguments: int) -> None:
        """A principal's memory is checked as its namespace's MEMORY_FOLDER: `read` covers
        reading it, `write` storing, logging, forgetting, indexing and setting a core block
        (core with a label and a text: `arguments` counts what the call was given)."""
        write = method in MEMORY_WRITES or (method == "core" and arguments > 1)
        self.check_path(Location(principal.name, principal.owner, MEMORY_FOLDER), write)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*_LISTS, *_NUMBERS)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Capabilities:
        if data is None:
            return cls()
        unknown = set(data) - {*_LISTS, *_NUMBERS}
        if unknown:
            raise InvalidRequestError("capabilities", f"unknown fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if k in _LISTS and v is not None else v for k, v in data.items()})


def _refuse(field: str, reason: str) -> str:
    raise CapabilityError(field, reason)


def _shown(location: Location) -> str:
    return f"~{location.namespace}/{location.path}"


def _covered(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether absolute `path` (~ns/p) is under one of the absolute prefixes."""
    namespace, _, rest = path[1:].partition("/")
    for prefix in prefixes:
        other, _, folder = prefix[1:].partition("/")
        if other == namespace and is_under(rest, folder):
            return True
    return False

"""Who is asking, and which namespace and path a name they give points to.

    principal        an owner ("alice", "key-1a2b3c4d", "local") or one of its agents
                     ("alice:researcher"); an agent's namespace is its own
    "notes/a.txt"    a path in the caller's own namespace ("/notes/a.txt" is the same)
    "~bob/a.txt"     a path in namespace "bob"; "~bob:helper/a.txt" in bob's agent's namespace

An owner has every right in its namespace and its agents' namespaces; anyone else needs a grant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmasos.errors import InvalidRequestError

MAX_PATH_CHARS = 1024  # a path as given, ~namespace/ included
MAX_SEGMENT_CHARS = 255

# What the checks below accept, as regular expressions (the HTTP API's documented patterns)
NAME_REGEX = r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}"
NAMESPACE_REGEX = rf"{NAME_REGEX}(?::{NAME_REGEX})?"
_CHAR = r"[^\x00-\x1f\x7f/]"


def _segment(first: str) -> str:
    """A segment: not "." or "..", and not starting with any of `first`."""
    head = rf"[^\x00-\x1f\x7f/.{first}]"
    return rf"(?:{head}{_CHAR}{{0,254}}|\.[^\x00-\x1f\x7f/.]{_CHAR}{{0,253}}|\.\.{_CHAR}{{1,253}})"


_SEGMENT, _PLAIN_FIRST = _segment(""), _segment("~")  # a bare "~name" is a namespace
_TAIL = rf"(?:/{_SEGMENT})*/*"
_RELATIVE = rf"/*{_PLAIN_FIRST}{_TAIL}"  # a first segment never starts with "~"
PATH_REGEX = rf"^(?:~{NAMESPACE_REGEX}/{_RELATIVE}|{_RELATIVE})$"
PREFIX_REGEX = rf"^(?:~{NAMESPACE_REGEX}(?:/*|/{_RELATIVE})|/*|{_RELATIVE})$"
_NAME = re.compile(rf"^{NAME_REGEX}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(field: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequestError(
            field,
            f"{name!r} is not a name: 1-128 letters, digits, '_', '.', '@' or '-', starting "
            "with a letter or digit",
        )
    return name


@dataclass(frozen=True)
class Principal:
    """Who acts on the file system or memory: an owner, or one of its agents."""

    owner: str
    agent: str | None = None

    def __post_init__(self) -> None:
        check_name("owner", self.owner)
        if self.agent is not None:
            check_name("agent", self.agent)

    @property
    def name(self) -> str:
        return self.owner if self.agent is None else f"{self.owner}:{self.agent}"

    @classmethod
    def parse(cls, text: str, field: str = "to") -> Principal:
        owner, _, agent = text.partition(":")
        try:
            return cls(owner, agent or None)
        except InvalidRequestError as error:
            raise InvalidRequestError(field, error.reason) from None


@dataclass(frozen=True)
class Location:
    """A resolved path: its namespace (a principal's name), the namespace's owner, the path."""

    namespace: str
    owner: str
    path: str

    def shown(self, caller: Principal) -> str:
        """How the caller names it: a plain path at home, ~namespace/path elsewhere."""
        return self.path if self.namespace == caller.name else f"~{self.namespace}/{self.path}"


def clean_path(path: str, field: str = "path", *, allow_root: bool = False) -> str:
    """`path` without leading or trailing slashes, refusing what could mean two things."""
    if not isinstance(path, str):
        raise InvalidRequestError(field, "must be a string")
    if len(path) > MAX_PATH_CHARS:
        raise InvalidRequestError(field, f"must be at most {MAX_PATH_CHARS} characters")
    if _CONTROL.search(path):
        raise InvalidRequestError(field, "must not contain control characters")
    cleaned = path.strip("/")
    if not cleaned:
        if allow_root:
            return ""
        raise InvalidRequestError(field, "must name a file, e.g. notes/today.txt")
    if cleaned.startswith("~"):
        raise InvalidRequestError(
            field, f"{path!r}: a first segment may not start with '~' (that names a namespace)"
        )
    for segment in cleaned.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidRequestError(field, f"{path!r}: empty, '.' and '..' segments are refused")
        if len(segment) > MAX_SEGMENT_CHARS:
            raise InvalidRequestError(field, f"a segment is over {MAX_SEGMENT_CHARS} characters")
    return cleaned


def locate(
    caller: Principal, path: str, field: str = "path", *, allow_root: bool = False
) -> Location:
    """Where `path` (as the caller wrote it) points."""
    if isinstance(path, str) and len(path) > MAX_PATH_CHARS:
        raise InvalidRequestError(field, f"must be at most {MAX_PATH_CHARS} characters")
    if isinstance(path, str) and path.startswith("~"):
        namespace, _, rest = path[1:].partition("/")
        principal = Principal.parse(namespace, field)
        if principal.name != namespace:  # "~alice:/x": not a namespace of its own
            raise InvalidRequestError(field, f"~{namespace} is not a namespace name")
        return Location(namespace, principal.owner, clean_path(rest, field, allow_root=allow_root))
    return Location(caller.name, caller.owner, clean_path(path, field, allow_root=allow_root))


def is_under(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or inside the folder `prefix` ("" holds everything)."""
    return not prefix or path == prefix or path.startswith(prefix + "/")

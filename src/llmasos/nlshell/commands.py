"""What `llmasos shell` may turn a sentence into: the CLI commands it knows, each with what it
needs of the caller's role, a grammar (Lark, for llguidance) whose every sentence is one of
them naming objects that exist, the few-shot prompt the model completes, and the parse back.

The grammar is the guarantee: whatever the model, the constrained decoding yields one whole,
valid command over the pids, jobs and models the server has now (a verb whose objects do not
exist is left out), or nothing at all.
"""

from __future__ import annotations

import enum
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from llmasos.errors import InvalidRequestError


class Access(enum.Enum):
    READ = "read"  # shows; a read-only key may run it
    WRITE = "write"  # changes the caller's own objects: a user key
    ADMIN = "admin"  # the server's keys and audit log: an admin key


ROLE_MAY = {
    "read-only": {Access.READ},
    "user": {Access.READ, Access.WRITE},
    "admin": {Access.READ, Access.WRITE, Access.ADMIN},
}


class Slot(enum.Enum):
    """What a command's one argument names."""

    PID = "PID"
    AGENT = "AGENT"
    JOB = "JOB"
    MODEL = "MODEL"
    KEY = "KEY"
    PATH = "PATH"
    TEXT = "TEXT"


@dataclass(frozen=True)
class Verb:
    words: str  # "jobs cancel"
    access: Access
    slot: Slot | None = None


VERBS = (
    Verb("ps", Access.READ),
    Verb("ps --all", Access.READ),
    Verb("models list", Access.READ),
    Verb("models ps", Access.READ),
    Verb("models show", Access.READ, Slot.MODEL),
    Verb("agents ps", Access.READ),
    Verb("jobs ls", Access.READ),
    Verb("jobs status", Access.READ, Slot.JOB),
    Verb("jobs logs", Access.READ, Slot.JOB),
    Verb("fs ls", Access.READ),
    Verb("fs usage", Access.READ),
    Verb("fs cat", Access.READ, Slot.PATH),
    Verb("fs log", Access.READ, Slot.PATH),
    Verb("kill", Access.WRITE, Slot.PID),
    Verb("agents kill", Access.WRITE, Slot.AGENT),
    Verb("jobs cancel", Access.WRITE, Slot.JOB),
    Verb("jobs suspend", Access.WRITE, Slot.JOB),
    Verb("jobs resume", Access.WRITE, Slot.JOB),
    Verb("fs rm", Access.WRITE, Slot.PATH),
    Verb("run", Access.WRITE, Slot.TEXT),
    Verb("keys list", Access.ADMIN),
    Verb("keys revoke", Access.ADMIN, Slot.KEY),
    Verb("audit verify", Access.ADMIN),
)
# Every command is at most MAX_COMMAND_CHARS long, so that the tokens a translation may take
# (one a character at worst) always finish it: a path of up to 4 segments of up to 16
# characters, never "." or ".." (no climbing out), a text of up to 48 characters.
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,15}"
PATH_PATTERN = rf"~?{_SEGMENT}(\/{_SEGMENT}){{0,3}}"  # "\/": Lark ends a regex at "/"
TEXT_PATTERN = r'"[^"\\\x00-\x1f]{1,48}"'  # no quote, backslash or control character
MAX_COMMAND_CHARS = 96
MAX_NAME_CHARS = 80  # a longer pid, job, model or key name is left out of the grammar


@dataclass(frozen=True)
class Thing:
    """An object the server has now, as the prompt describes it to the model."""

    name: str
    about: str = ""


@dataclass
class World:
    """What the commands may name: the server's objects now."""

    processes: list[Thing] = field(default_factory=list)
    agents: list[Thing] = field(default_factory=list)
    jobs: list[Thing] = field(default_factory=list)
    models: list[Thing] = field(default_factory=list)
    keys: list[Thing] = field(default_factory=list)

    def names(self, slot: Slot) -> list[str] | None:
        """The names a slot may take (none too long to say); None for free text."""
        things = {
            Slot.PID: self.processes, Slot.AGENT: self.agents, Slot.JOB: self.jobs,
            Slot.MODEL: self.models, Slot.KEY: self.keys,
        }.get(slot)  # fmt: skip
        return None if things is None else [t.name for t in things if len(t.name) <= MAX_NAME_CHARS]


@dataclass(frozen=True)
class Command:
    verb: Verb
    argument: str | None = None

    @property
    def argv(self) -> list[str]:
        """As the CLI takes it; free text after "--", so that none is read as an option."""
        words = self.verb.words.split()
        if self.argument is None:
            return words
        if self.verb.slot is Slot.TEXT:
            return [*words, "--", json.loads(self.argument)]
        return [*words, self.argument]

    def __str__(self) -> str:
        return self.verb.words + (f" {self.argument}" if self.argument is not None else "")


def may_run(command: Command, role: str) -> bool:
    return command.verb.access in ROLE_MAY.get(role, set())


def grammar(world: World) -> str:
    """A Lark grammar of every command the world allows (a verb whose slot names nothing
    that exists is left out)."""
    choices, terminals = [], {}
    for verb in VERBS:
        literal = json.dumps(verb.words + (" " if verb.slot else ""))
        if verb.slot is None:
            choices.append(literal)
            continue
        names = world.names(verb.slot)
        if names == []:
            continue
        terminal = verb.slot.value
        if names is None:
            pattern = TEXT_PATTERN if verb.slot is Slot.TEXT else PATH_PATTERN
            terminals[terminal] = f"/{pattern}/"
        else:
            terminals[terminal] = " | ".join(json.dumps(n) for n in names)
        choices.append(f"{literal} {terminal}")
    rules = [f'start: " " ({" | ".join(choices)})']  # after "Command:", as the examples
    rules += [f"{name}: {body}" for name, body in terminals.items()]
    return "\n".join(rules) + "\n"


def parse(line: str, world: World) -> Command:
    """The command a line spells (InvalidRequestError naming what is wrong otherwise)."""
    line = line.strip()
    for verb in sorted(VERBS, key=lambda v: -len(v.words)):  # "ps --all" before "ps"
        if verb.slot is None and line == verb.words:
            return Command(verb)
        if verb.slot is not None and line.startswith(verb.words + " "):
            argument = line[len(verb.words) + 1 :]
            if _fits(argument, verb.slot, world):
                return Command(verb, argument)
    raise InvalidRequestError("command", f"{line!r} is not a command the shell knows")


def verb_of(argv: Sequence[str]) -> Verb:
    """The verb a command line starts with (what it needs of a role, whatever its object)."""
    for verb in sorted(VERBS, key=lambda v: -len(v.words)):
        words = verb.words.split()
        if list(argv[: len(words)]) == words and len(argv) == len(words) + _arguments(verb):
            return verb
    raise InvalidRequestError("command", f"{quoted(argv)!r} is not a command the shell knows")


def _arguments(verb: Verb) -> int:
    return 0 if verb.slot is None else 2 if verb.slot is Slot.TEXT else 1  # TEXT: "--" too


def parse_argv(argv: Sequence[str], world: World) -> Command:
    """The command of a shell-split line (`llmasos` left out), as parse."""
    for verb in VERBS:
        words = verb.words.split()
        rest = list(argv[len(words) :]) if list(argv[: len(words)]) == words else None
        if rest is not None and verb.slot is Slot.TEXT:
            rest = rest[1:] if rest[:1] == ["--"] else None
        if rest == [] and verb.slot is None:
            return Command(verb)
        if rest is not None and len(rest) == 1 and verb.slot is not None:
            argument = json.dumps(rest[0]) if verb.slot is Slot.TEXT else rest[0]
            if _fits(argument, verb.slot, world):
                return Command(verb, argument)
    raise InvalidRequestError("command", f"{quoted(argv)!r} is not a command the shell knows")


def _fits(argument: str, slot: Slot, world: World) -> bool:
    names = world.names(slot)
    if names is not None:
        return argument in names
    pattern = TEXT_PATTERN if slot is Slot.TEXT else PATH_PATTERN
    return re.fullmatch(pattern, argument) is not None


EXAMPLES = (
    ("show me what is running", "ps"),
    ("list every process, finished ones too", "ps --all"),
    ("stop process {pid}", "kill {pid}"),
    ("which models do I have", "models list"),
    ("what is loaded in memory right now", "models ps"),
    ("tell me about the model {model}", "models show {model}"),
    ("how are my training jobs doing", "jobs ls"),
    ("cancel the job {job}", "jobs cancel {job}"),
    ("pause training job {job}", "jobs suspend {job}"),
    ("show the loss curve of {job}", "jobs logs {job}"),
    ("what files do I have", "fs ls"),
    ("print the file notes/todo.txt", "fs cat notes/todo.txt"),
    ("delete old/draft.md", "fs rm old/draft.md"),
    ("how much storage am I using", "fs usage"),
    ("list the running agents", "agents ps"),
    ("who has API keys", "keys list"),
    ("is the audit log intact", "audit verify"),
    ("write a poem about the sea", 'run "A poem about the sea:"'),
)


def prompt(sentence: str, world: World, examples: int = len(EXAMPLES)) -> str:
    """The few-shot prompt: the server's objects, the `examples` most like the sentence (the
    most alike last), then the sentence."""
    example = {
        "pid": world.processes[0].name if world.processes else "1042",
        "job": world.jobs[0].name if world.jobs else "task-5f3a",
        "model": world.models[0].name if world.models else "gemma3-270m:q4_k_m",
    }
    lines = ["Each request is turned into one llmasos command.", ""]
    for title, things in (
        ("Processes", world.processes), ("Agents", world.agents), ("Jobs", world.jobs),
        ("Models", world.models),
    ):  # fmt: skip
        described = "; ".join(f"{t.name} ({t.about})" if t.about else t.name for t in things)
        lines.append(f"{title}: {described or 'none'}")
    lines.append("")
    filled = [(said.format(**example), command.format(**example)) for said, command in EXAMPLES]
    alike = sorted(filled, key=lambda pair: _overlap(pair[0], sentence))
    for said, command in alike[len(alike) - examples :]:
        lines += [f"Request: {said}", f"Command: {command}"]
    lines += [f"Request: {' '.join(sentence.split())}", "Command:"]
    return "\n".join(lines)


def _overlap(said: str, sentence: str) -> int:
    """Words two requests share: the most alike example goes last, nearest the request (a
    small base model copies what it saw last)."""
    return len(set(_words(said)) & set(_words(sentence)))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def quoted(argv: Sequence[str]) -> str:
    return shlex.join(argv)

"""The natural-language shell's commands (nlshell/commands.py): what the grammar allows, what
parses back, what each role may run, and how the prompt is laid out."""

from __future__ import annotations

import shlex

import llguidance
import pytest

from llmasos.errors import InvalidRequestError
from llmasos.nlshell.commands import (
    EXAMPLES,
    MAX_COMMAND_CHARS,
    VERBS,
    Access,
    Command,
    Thing,
    World,
    grammar,
    may_run,
    parse,
    parse_argv,
    prompt,
    verb_of,
)

WORLD = World(
    processes=[Thing("1042", "running"), Thing("1043")],
    agents=[Thing("1050", "helper")],
    jobs=[Thing("task-5f3a", "running")],
    models=[Thing("gemma3-270m:q4_k_m")],
    keys=[Thing("a1b2c3", "bob")],
)
FILLED = {"pid": "1042", "job": "task-5f3a", "model": "gemma3-270m:q4_k_m"}


@pytest.mark.parametrize(("said", "command"), EXAMPLES)
def test_every_example_is_a_command_that_parses_back_and_splits_as_a_shell_would(said, command):
    line = command.format(**FILLED)
    parsed = parse(line, WORLD)
    assert str(parsed) == line
    assert parse_argv(shlex.split(shlex.join(parsed.argv)), WORLD) == parsed


def test_the_grammar_names_only_what_exists():
    text = grammar(WORLD)
    assert '"1042" | "1043"' in text and '"task-5f3a"' in text
    empty = grammar(World())
    assert '"kill "' not in empty and '"jobs cancel "' not in empty  # nothing to name
    assert '"ps"' in empty and '"fs cat "' in empty  # paths are free text


@pytest.mark.parametrize(
    "line",
    ["kill 9999", "kill", "jobs cancel task-nope", "fs cat has space.txt", "rm -rf /", "ps --al",
     'run "unclosed', "keys revoke zzz"],
)  # fmt: skip
def test_what_is_not_a_command_of_this_world_is_refused(line):
    with pytest.raises(InvalidRequestError, match="command"):
        parse(line, WORLD)


def test_each_role_runs_what_it_may():
    by_access = {v.access: Command(v, None) for v in VERBS if v.slot is None}
    for role, allowed in (("read-only", {Access.READ}), ("user", {Access.READ, Access.WRITE}),
                          ("admin", set(Access)), ("stranger", set())):  # fmt: skip
        for access, command in by_access.items():
            assert may_run(command, role) == (access in allowed), (role, access)
    assert may_run(parse("kill 1042", WORLD), "user") and not may_run(
        parse("kill 1042", WORLD), "read-only"
    )


def test_the_prompt_lists_the_world_and_ends_with_the_most_alike_example():
    text = prompt("please cancel the job task-5f3a now", WORLD)
    assert "Processes: 1042 (running); 1043" in text and "Jobs: task-5f3a (running)" in text
    lines = text.splitlines()
    assert lines[-1] == "Command:" and lines[-2] == "Request: please cancel the job task-5f3a now"
    assert lines[-4:-2] == ["Request: cancel the job task-5f3a", "Command: jobs cancel task-5f3a"]


@pytest.mark.parametrize("world", [WORLD, World()], ids=["objects", "empty"])
def test_the_grammar_compiles_in_the_constraint_engine(world):
    compiled = llguidance.LLMatcher.grammar_from_lark(grammar(world))
    assert llguidance.LLMatcher.validate_grammar(compiled) == ""


@pytest.mark.parametrize(
    "line",
    ["fs rm a/../../v1/agents/5", "fs cat ..", "fs cat ./x", 'run "tab\there"', 'run "a\\b"'],
)
def test_no_path_climbs_out_and_no_text_carries_a_control_character(line):
    with pytest.raises(InvalidRequestError):
        parse(line, WORLD)


def test_the_verb_of_a_line_says_what_it_needs_and_free_text_follows_a_double_dash():
    assert verb_of(["kill", "1042"]).access is Access.WRITE
    assert verb_of(["ps", "--all"]).access is Access.READ
    assert verb_of(["audit", "verify"]).access is Access.ADMIN
    command = parse('run "--help me"', WORLD)
    assert command.argv == ["run", "--", "--help me"]
    assert verb_of(command.argv).access is Access.WRITE
    for bad in (["kill"], ["run", "text"], ["ps", "--all", "x"], ["rm", "-rf"]):
        with pytest.raises(InvalidRequestError):
            verb_of(bad)


def test_every_command_the_grammar_allows_fits_the_translations_token_budget():
    long_model = "m" * 64 + ":" + "t" * 30  # a valid repository name over MAX_NAME_CHARS
    world = World(models=[Thing(long_model), Thing("gemma3-270m:q4_k_m")])
    assert f'"{long_model}"' not in grammar(world)  # left out, not cut
    longest_path = "~" + "/".join(["a" * 16] * 4)
    longest = [f"fs cat {longest_path}", f'run "{"x" * 48}"', "models show gemma3-270m:q4_k_m"]
    for line in longest:
        assert len(str(parse(line, world))) <= MAX_COMMAND_CHARS
    for line in (f"fs cat {longest_path}/a", f'run "{"x" * 49}"', f"models show {long_model}"):
        with pytest.raises(InvalidRequestError):
            parse(line, world)


def test_fewer_examples_keep_the_most_alike():
    text = prompt("cancel the job task-5f3a", WORLD, examples=2)
    assert text.count("Request:") == 3  # two examples and the request
    assert "Request: cancel the job task-5f3a\nCommand: jobs cancel task-5f3a" in text

"""The tool registry and the calculator: argument checking and error results (pure logic)."""

from __future__ import annotations

import pytest

from llmasos.errors import InvalidRequestError, UnknownToolError
from llmasos.tools.builtins import calculator_tool
from llmasos.tools.registry import ToolFailure, ToolRegistry


@pytest.mark.parametrize(
    ("expression", "value"),
    [("2 + 3 * (4 - 1) ** 2", 29), ("-7 // 2", -4), ("sqrt(16) + abs(-2)", 6.0), ("pi > 3", None)],
)
def test_the_calculator_evaluates_arithmetic_only(expression, value):
    result = ToolRegistry([calculator_tool()]).call("calculator", {"expression": expression})
    if value is None:
        assert not result.ok and "not allowed" in result.error
    else:
        assert result.ok and result.value == value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('true')", "not allowed"),
        ("9 ** 99999", "beyond 4096 bits"),
        ("1 / 0", "ZeroDivisionError"),
        ("2 +", "not arithmetic"),
        ("(lambda: 1)()", "not allowed"),
    ],
)
def test_the_calculator_refuses_what_is_not_bounded_arithmetic(expression, message):
    result = ToolRegistry([calculator_tool()]).call("calculator", {"expression": expression})
    assert not result.ok and message in result.error


def test_arguments_are_checked_against_the_schema_and_name_the_field():
    registry = ToolRegistry([calculator_tool()])
    missing = registry.call("calculator", {})
    wrong = registry.call("calculator", {"expression": 5})
    extra = registry.call("calculator", {"expression": "1", "mode": "x"})
    assert "'expression' is a required property" in missing.error
    assert wrong.error.startswith("expression: 5 is not of type 'string'")
    assert "Additional properties" in extra.error
    with pytest.raises(UnknownToolError, match="registered: calculator"):
        registry.call("shell", {})


def test_a_registered_function_runs_and_its_failures_become_error_results():
    registry = ToolRegistry()

    def lookup(city):
        """The weather in a city."""
        if city == "Atlantis":
            raise ToolFailure("no such city")
        return {"city": city, "sky": "clear"}

    tool = registry.register_function(lookup)
    assert (tool.name, tool.description) == ("lookup", "The weather in a city.")
    assert registry.call("lookup", {"city": "Paris"}).value == {"city": "Paris", "sky": "clear"}
    assert registry.call("lookup", {"city": "Atlantis"}).text() == "error: no such city"
    registry.register_function(lambda: object(), name="opaque")
    assert "not JSON serializable" in registry.call("opaque", {}).error
    with pytest.raises(InvalidRequestError, match="registered"):
        registry.register_function(lookup)
    with pytest.raises(InvalidRequestError, match="parameters"):
        registry.register_function(lookup, name="bad", parameters={"type": 12})

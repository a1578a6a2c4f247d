import pytest

from llmasos.errors import InvalidRequestError
from llmasos.sampling import MAX_STOP_STRINGS, SamplingParams


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("max_tokens", 0, ">= 1"),
        ("max_tokens", -5, ">= 1"),
        ("max_tokens", 2.5, "integer"),
        ("max_tokens", True, "integer"),
        ("temperature", -0.1, "between 0.0 and 100.0"),
        ("temperature", float("nan"), "between 0.0 and 100.0"),
        ("temperature", "hot", "number"),
        ("top_p", 0.0, "(0, 1]"),
        ("top_p", 1.5, "(0, 1]"),
        ("top_k", -1, ">= 0"),
        ("min_p", 2.0, "between 0.0 and 1.0"),
        ("repeat_penalty", 0.0, "between 0.01 and 10.0"),
        ("seed", -1, ">= 0"),
        ("stop", 5, "string or a list"),
        ("stop", [""], "non-empty"),
        ("stop", ["x"] * (MAX_STOP_STRINGS + 1), f"at most {MAX_STOP_STRINGS}"),
    ],
)
def test_bad_field_is_named_with_its_limit(field, value, limit):
    with pytest.raises(InvalidRequestError) as info:
        SamplingParams.build(**{field: value})
    assert info.value.field == field
    assert limit in str(info.value)
    assert str(info.value).startswith(f"{field}:")


def test_good_fields_are_kept():
    params = SamplingParams.build(max_tokens=7, temperature=0, top_p=1, stop="END", seed=3)
    assert (params.max_tokens, params.temperature, params.top_p, params.stop, params.seed) == (
        7,
        0.0,
        1.0,
        ("END",),
        3,
    )
    assert params.greedy

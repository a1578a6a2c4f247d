"""Capabilities narrow and never widen; the rate limiter's buckets; the private release."""

from __future__ import annotations

import statistics

import pytest

from llmasos.auth.capabilities import Capabilities
from llmasos.errors import (
    CapabilityError,
    InvalidRequestError,
    RateLimitedError,
    UnknownModelError,
)
from llmasos.security.privacy import PrivateRelease, Query, laplace
from llmasos.server.rate_limits import RateLimiter, RateLimits
from llmasos.storage.paths import Principal, locate

AGENT = Principal("alice", "planner")
PARENT = Capabilities(
    models=("gemma3-270m:q4_k_m",), tools=("calculator",), read=("notes", "~bob/shared"),
    write=("notes/out",), channels=("news",), max_pages=8, token_budget=1000,
).resolved(AGENT)  # fmt: skip


def test_relative_prefixes_become_the_receivers_namespace():
    assert PARENT.read == ("~alice:planner/notes", "~bob/shared")
    assert PARENT.write == ("~alice:planner/notes/out",)


@pytest.mark.parametrize(
    ("wanted", "field"),
    [
        (Capabilities(models=("other:latest",)), "capabilities.models"),
        (Capabilities(tools=("calculator", "python")), "capabilities.tools"),
        (Capabilities(read=("~alice:planner",)), "capabilities.read"),
        (Capabilities(write=("~alice:planner/notes",)), "capabilities.write"),
        (Capabilities(channels=("news", "secrets")), "capabilities.channels"),
        (Capabilities(max_pages=9), "capabilities.max_pages"),
        (Capabilities(token_budget=1001), "capabilities.token_budget"),
    ],
)
def test_a_child_asking_for_more_is_refused_naming_the_field(wanted, field):
    with pytest.raises(CapabilityError) as refused:
        PARENT.narrowed(wanted)
    assert refused.value.field == field


def test_a_child_inherits_what_it_leaves_out_and_may_narrow():
    child = PARENT.narrowed(Capabilities(read=("~alice:planner/notes/2026",), max_pages=4))
    assert child.read == ("~alice:planner/notes/2026",) and child.max_pages == 4
    assert child.tools == PARENT.tools and child.token_budget == 1000
    assert PARENT.narrowed(None) is PARENT


def test_a_child_of_an_unlimited_parent_may_ask_for_anything():
    assert Capabilities().narrowed(Capabilities(tools=("python",))).tools == ("python",)


def test_checks_refuse_outside_and_allow_inside():
    PARENT.check_tool("calculator")
    PARENT.check_channel("news")
    PARENT.check_path(locate(AGENT, "notes/a.txt"), write=False)
    PARENT.check_path(locate(AGENT, "~bob/shared/x"), write=False)
    PARENT.check_path(locate(AGENT, "notes/out/report"), write=True)
    for check in (
        lambda: PARENT.check_tool("python"),
        lambda: PARENT.check_channel("other"),
        lambda: PARENT.check_path(locate(AGENT, "notes-old/a"), write=False),  # not a folder
        lambda: PARENT.check_path(locate(AGENT, "notes/a.txt"), write=True),
        lambda: PARENT.check_path(locate(AGENT, "~bob/private"), write=False),
    ):
        with pytest.raises(CapabilityError):
            check()


def test_the_first_model_is_the_default_and_others_are_refused():
    assert PARENT.model_for(None) == "gemma3-270m:q4_k_m"
    assert PARENT.model_for("gemma3-270m:q4_k_m") == "gemma3-270m:q4_k_m"
    with pytest.raises(CapabilityError, match=r"capabilities\.models"):
        PARENT.model_for("llama:7b")
    assert Capabilities().model_for(None) is None


def test_capabilities_round_trip_and_bad_ones_name_the_field():
    assert Capabilities.from_json(PARENT.to_json()) == PARENT
    with pytest.raises(InvalidRequestError, match=r"capabilities\.tools"):
        Capabilities(tools=("no spaces",))
    with pytest.raises(InvalidRequestError, match="capabilities"):
        Capabilities.from_json({"root": True})
    with pytest.raises(InvalidRequestError, match=r"capabilities\.max_pages"):
        Capabilities(max_pages=0)


class Owners:
    """The repository's two answers, for alice's one private model."""

    def owner_of(self, name: str) -> str | None:
        return {"alice.mine:lora": "alice"}.get(name)

    def unknown(self, name: str) -> UnknownModelError:
        return UnknownModelError(name, ["shared:latest"])


def test_another_owners_private_model_is_refused_as_a_missing_one_is():
    owners = Owners()
    bob = Capabilities(owner="bob", private_models=owners)
    for check in (bob.check_model, bob.model_for, bob.check_visible):
        with pytest.raises(UnknownModelError) as refused:
            check("alice.mine:lora")
        assert str(refused.value) == str(owners.unknown("alice.mine:lora"))
    assert bob.model_for("shared:latest") == "shared:latest" and bob.model_for(None) is None
    assert not bob.sees_model("alice.mine:lora") and bob.sees_model("shared")
    pinned = Capabilities(models=("alice.mine:lora",), owner="bob", private_models=owners)
    with pytest.raises(UnknownModelError):
        pinned.model_for(None)  # not through the default either
    alice = Capabilities(models=("alice.mine:lora",), owner="alice", private_models=owners)
    assert alice.model_for(None) == "alice.mine:lora" and alice.sees_model("alice.mine:lora")
    child = bob.narrowed(Capabilities(tools=("calculator",)))
    assert (child.owner, child.private_models) == ("bob", owners)  # a child stays confined
    assert not child.sees_model("alice.mine:lora")
    assert bob.to_json() == Capabilities().to_json()  # never stored with a key
    assert Capabilities().sees_model("alice.mine:lora")  # an admin's (no confinement)


def test_the_rate_limiter_refuses_past_the_rate_with_a_retry_time():
    limiter = RateLimiter(RateLimits(requests_per_minute=3, tokens_per_minute=100))
    for _ in range(3):
        limiter.take_request("key a")
    with pytest.raises(RateLimitedError) as refused:
        limiter.take_request("key a")
    assert 1 <= refused.value.retry_after_s <= 20
    limiter.take_request("key b")  # another caller has its own bucket
    limiter.take_tokens("key a", 100)
    with pytest.raises(RateLimitedError):
        limiter.take_tokens("key a", 1)
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        limiter.take_tokens("key b", 101)  # could never pass: a 400, not a 429
    RateLimiter(RateLimits()).take_request("anyone")  # no limits: nothing refused


def test_laplace_noise_has_the_scale_it_claims():
    draws = [laplace(2.0) for _ in range(20000)]
    assert abs(statistics.mean(draws)) < 0.1
    assert 1.9 < statistics.mean(abs(d) for d in draws) < 2.1  # E|X| = scale


def test_a_release_is_noisy_clamped_and_the_same_within_its_window():
    release = PrivateRelease(epsilon=1.0, window_s=3600)
    values = {"tokens": 500, "count": 3}
    queries = [Query(("tokens",), 100), Query(("count",), 1)]
    first = release.release("m", values, queries)
    assert first == release.release("m", {"tokens": 0, "count": 0}, queries)  # cached
    assert all(v >= 0 for v in first.values())
    spread = {PrivateRelease(1.0, 3600).release("m", values, queries)["tokens"] for _ in range(50)}
    assert len(spread) > 10  # noise of scale 200 on the tokens

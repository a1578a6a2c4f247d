"""Merging the replicas' reports into the pool's (cluster/gather.py)."""

from llmasos.cluster.gather import merged_lists, merged_reports


def test_lists_are_joined_in_pid_order():
    first = {"object": "list", "data": [{"pid": 1_000_000_002}, {"pid": 1_000_000_001}]}
    second = {"object": "list", "data": [{"pid": 2_000_000_001}]}
    joined = merged_lists([second, first])
    assert [row["pid"] for row in joined["data"]] == [1_000_000_001, 1_000_000_002, 2_000_000_001]
    assert merged_lists([]) == {"object": "list", "data": []}


def test_counters_add_up_and_shared_fields_are_taken_once():
    one = {
        "model": "gemma", "policy": "fair", "page_size": 16, "uptime_s": 30.0,
        "generated_tokens": 10, "processes": {"running": 1, "terminated": 4},
        "rows": [{"pid": 7}], "note": None, "ready": True,
    }  # fmt: skip
    two = {
        "model": "gemma", "policy": "fair", "page_size": 16, "uptime_s": 50.0,
        "generated_tokens": 5, "processes": {"terminated": 2, "suspended": 1},
        "rows": [{"pid": 3}], "note": "x", "ready": False,
    }  # fmt: skip
    whole = merged_reports([one, two])
    assert whole["generated_tokens"] == 15 and whole["uptime_s"] == 50.0
    assert whole["page_size"] == 16 and whole["model"] == "gemma"
    assert whole["processes"] == {"running": 1, "terminated": 6, "suspended": 1}
    assert whole["rows"] == [{"pid": 3}, {"pid": 7}]
    assert whole["note"] is None and whole["ready"] is True  # not numbers: the first one's
    assert merged_reports([one]) == one


def test_the_hit_rate_is_worked_out_again_not_added():
    one = {"prefix_hits": 3, "prefix_misses": 1, "prefix_hit_rate": 0.75}
    two = {"prefix_hits": 1, "prefix_misses": 3, "prefix_hit_rate": 0.25}
    assert merged_reports([one, two])["prefix_hit_rate"] == 0.5

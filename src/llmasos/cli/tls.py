"""`llmasos serve --tls-cert/--tls-key`: the pair is checked before the server starts."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmasos.errors import InvalidRequestError


class _EncryptedKey(Exception):
    pass


def _no_password() -> bytes:
    raise _EncryptedKey


def tls_files(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    """(cert, key) when both are given and make a working pair, None when neither is given;
    InvalidRequestError naming the flag at fault otherwise (so the server never starts with
    a TLS setup that would fail on the first connection)."""
    if cert is None and key is None:
        return None
    if key is None:
        raise InvalidRequestError("--tls-key", "missing; --tls-cert needs it (both or neither)")
    if cert is None:
        raise InvalidRequestError("--tls-cert", "missing; --tls-key needs it (both or neither)")
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            problem = "is not a file" if path.exists() else "does not exist"
            raise InvalidRequestError(flag, f"{path} {problem}")
        try:
            path.open("rb").close()
        except OSError as error:
            raise InvalidRequestError(flag, f"cannot read {path}: {error.strerror}") from None
    try:
        ssl.create_default_context(cafile=str(cert))
    except ssl.SSLError:
        raise InvalidRequestError("--tls-cert", f"{cert} holds no PEM certificate") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=_no_password)
    except _EncryptedKey:
        raise InvalidRequestError(
            "--tls-key",
            f"{key} is encrypted; give an unencrypted key (`openssl pkey -in KEY -out PLAIN`)",
        ) from None
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            message = f"{key} does not match the certificate in {cert}"
        else:
            message = f"{key} holds no PEM private key"
        raise InvalidRequestError("--tls-key", message) from None
    return cert, key


def serve_http(
    app: Any, host: str, port: int, tls: tuple[Path, Path] | None, banner: Callable[[str], str]
) -> None:
    """Print `banner(url)`, then serve `app` at that URL (over TLS with `tls`)."""
    import uvicorn

    from llmasos.cli.common import announce

    announce(banner(f"{'https' if tls else 'http'}://{host}:{port}"))
    cert, key = tls or (None, None)
    uvicorn.run(  # its loggers go to the handler `llmasos serve --log-format` set up
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        ssl_certfile=cert,
        ssl_keyfile=key,
    )

"""A throwaway private CA and a server certificate from it, made with `openssl` in a test's folder.

Registries behind a private CA are common in companies; these files let a
test stand one up on 127.0.0.1 (Debian's docker-registry or pytest-httpserver)
without touching the host's trust store.
"""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class ServerFiles:
    ca: Path
    """The CA's certificate: what a client must trust."""
    certificate: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, self.key)
        return context


def make(folder: Path, names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> ServerFiles:
    """A CA and a certificate it signed for ``names`` (IP addresses or DNS names)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.crt", folder / "ca.key"
    cert, key, csr = folder / "server.crt", folder / "server.key", folder / "server.csr"
    alt = ",".join(f"IP:{name}" if name[0].isdigit() else f"DNS:{name}" for name in names)
    extensions = folder / "server.ext"
    extensions.write_text(
        f"subjectAltName={alt}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    ca_extensions = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    ca_subject = ["-subj", "/CN=xcompile test CA", *ca_extensions]
    _openssl("req", "-x509", *_EC, "-keyout", ca_key, "-out", ca, "-days", "2", *ca_subject)
    _openssl("req", *_EC, "-keyout", key, "-out", csr, "-subj", f"/CN={names[0]}")
    signed_by_ca = ["-CA", ca, "-CAkey", ca_key, "-CAcreateserial"]
    _openssl("x509", "-req", "-in", csr, *signed_by_ca, "-out", cert, "-days", "2", "-extfile", extensions)
    return ServerFiles(ca, cert, key)


def _openssl(*args: str | Path) -> None:
    try:
        made = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.fail("openssl is not installed; `apt-get install openssl`")
    if made.returncode != 0:
        pytest.fail(f"openssl {args[0]} failed: {made.stderr.strip()}")

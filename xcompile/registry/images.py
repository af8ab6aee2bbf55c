"""An image as its manifest and config say it, and its layers' blobs as a stream: what `xcompile verify` reads.

The ``Reader``'s requests (its credentials, CAs, bounds, and its answer to
a 401) with what ``Reader.read`` leaves out: the manifest itself (its layers)
and the config's ``rootfs``. A manifest fetched by digest must hash to that
digest, so a registry cannot answer for one image with another. A layer blob
is streamed in chunks: registry/toplayer.py bounds and checks what they hold.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import requests

from xcompile.errors import RegistryUnreadable
from xcompile.registry import Member, content, reference
from xcompile.registry import http as registry_http
from xcompile.registry.reader import ACCEPT, Reader

_CHUNK = 1 << 20


class ImageReader(Reader):
    def manifest(self, path: str, reference: str) -> tuple[str, dict[str, Any]] | None:
        """The manifest (or list) at ``path`` under ``reference`` and its digest, the SHA256 of
        its bytes; None where the registry has no such tag or digest. Checked as the reader
        checks what it reads (registry/content.py): the digest, and the fields of its type."""
        with registry_http.session(self.where.host) as made:
            status, body, headers = self._get(made, f"/v2/{path}/manifests/{reference}", path, {"Accept": ACCEPT})
        if status == 404:
            return None
        what = f"{path}@{reference}" if reference.startswith("sha256:") else f"{path}:{reference}"
        self._ok(status, what)
        asked = reference if reference.startswith("sha256:") else None
        digest = content.digest_of(body, f"the manifest of {what}", asked=asked)
        manifest = registry_http.json_object(body, f"the manifest of {path}@{digest}")
        content.kind_of(manifest, str(headers.get("Content-Type", "")), f"the manifest of {what}")
        return digest, manifest

    def config(self, path: str, digest: str) -> dict[str, Any]:
        """The image config blob ``digest``, checked against its digest."""
        _digest(digest, "a config")
        with registry_http.session(self.where.host) as made:
            status, body, _ = self._get(made, f"/v2/{path}/blobs/{digest}", path, {})
        self._ok(status, f"the config {digest} of {path}")
        content.digest_of(body, f"the config {digest} of {path}", asked=digest)
        return registry_http.json_object(body, f"the config {digest} of {path}")

    @contextlib.contextmanager
    def blob(self, path: str, digest: str, reference: str) -> Iterator[Iterator[bytes]]:
        """The blob ``digest`` of ``path``, as chunks. ``reference``, a manifest of the same
        repository, is read again to answer the registry's challenge where it asks for one."""
        _digest(digest, "a layer")
        url = f"{self.where.url}/v2/{path}/blobs/{digest}"
        with registry_http.session(self.where.host) as made:
            answer = self._open(made, url)
            if answer.status_code == 401:  # a token for another repository (the base's), or an old one
                answer.close()
                self._get(made, f"/v2/{path}/manifests/{reference}", path, {"Accept": ACCEPT})
                answer = self._open(made, url)
            with answer:
                self._ok(answer.status_code, f"the layer {digest} of {path}")
                yield _chunks(answer, url)

    def _open(self, made: requests.Session, url: str) -> requests.Response:
        with self._lock:
            auth = self._auth
        try:
            return made.get(url, headers={"Authorization": auth} if auth else {}, timeout=registry_http.TIMEOUT,
                            stream=True, allow_redirects=True)  # fmt: skip
        except requests.RequestException as err:
            msg = f"{url}: {_why(err)}"
            raise RegistryUnreadable(msg, why=_why(err)) from None


def members(manifest: Mapping[str, Any], what: str) -> list[Member]:
    """A list's entries, checked as the reader checks them for `inspect` and the build."""
    return list(content.members(manifest.get("manifests"), what))


def _chunks(answer: requests.Response, url: str) -> Iterator[bytes]:
    try:
        yield from answer.iter_content(_CHUNK)
    except requests.RequestException as err:
        msg = f"{url}: {_why(err)}"
        raise RegistryUnreadable(msg, why=_why(err)) from None


def _why(err: requests.RequestException) -> str:
    if isinstance(err, requests.Timeout):
        return f"no answer within {registry_http.TIMEOUT[1]:g} s"
    if isinstance(err, requests.ConnectionError):
        return "connection refused, cut or host unknown"
    return type(err).__name__


def _digest(digest: str, what: str) -> None:
    if not reference.DIGEST.fullmatch(digest):
        msg = f"{what} named {digest[:80]!r}, which is no sha256 digest"
        raise RegistryUnreadable(msg)

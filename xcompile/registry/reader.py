"""What a registry holds under a tag, read without pulling: its manifest, and its config's labels.

Through the registry API, with the engine's credentials (``credentials``).
Two small GETs per image on a warm registry, where `docker pull` would write
the image into the local store and `docker manifest inspect` shows no
labels. Whatever the registry answers, the result is a ``Remote``, None (no
such tag), or RegistryUnreadable, which callers turn into "cannot read …;
building": never an error that ends the run.
"""

from __future__ import annotations

import threading
from typing import Any

import requests

from xcompile.errors import RegistryUnreadable
from xcompile.registry import IMAGE_TYPES, LIST_TYPES, Registry, Remote, content, credentials, labels_of, platform_of
from xcompile.registry import http as registry_http
from xcompile.system.runner import Runner

ACCEPT = ", ".join(LIST_TYPES + IMAGE_TYPES)


class Reader:
    def __init__(self, where: Registry, auth_files: tuple[credentials.AuthFile, ...], runner: Runner) -> None:
        self.where = where
        self.auth_files = auth_files
        self.runner = runner
        self._auth: str | None = None
        """An Authorization header that worked, reused for the next requests."""
        self._login: tuple[credentials.Login | None] | None = None
        """The login, once looked up: a credential helper runs (and warns) once a reader."""
        self._lock = threading.Lock()

    def read(self, path: str, reference: str) -> Remote | None:
        """The image or list at ``path`` under ``reference`` (a tag or a digest);
        None when the registry has no such tag."""
        ref = f"{path}:{reference}"
        what = f"the manifest of {ref}"
        with registry_http.session(self.where.host) as made:
            status, body, headers = self._get(made, f"/v2/{path}/manifests/{reference}", path, {"Accept": ACCEPT})
            if status == 404:
                return None
            self._ok(status, ref)
            # A digest names bytes: one asked for, and the one the registry says, must be their hash.
            given = str(headers.get("Docker-Content-Digest", "")) or None
            digest = content.digest_of(body, what, asked=_digest_in(reference), given=given)
            manifest = registry_http.json_object(body, what)
            kind = content.kind_of(manifest, str(headers.get("Content-Type", "")), what)
            if kind in LIST_TYPES:
                return Remote(ref, digest, members=content.members(manifest.get("manifests"), what))
            config_digest = content.config_digest(manifest, what)
            status, body, _ = self._get(made, f"/v2/{path}/blobs/{config_digest}", path, {})
            self._ok(status, f"the config of {ref}")
            content.digest_of(body, f"the config of {ref}", asked=config_digest)
            blob = registry_http.json_object(body, f"the config of {ref}")
            labels = labels_of(blob)
            if labels is None:
                msg = f"the config of {ref} holds labels that are not text by name"
                raise RegistryUnreadable(msg)
            return Remote(ref, digest, labels=labels, platform=platform_of(blob))

    def _get(self, made: requests.Session, path: str, name: str, headers: dict[str, str]) -> tuple[int, bytes, Any]:
        url = self.where.url + path
        with self._lock:
            auth = self._auth
        status, body, answer = registry_http.get(made, url, {**headers, **({"Authorization": auth} if auth else {})})
        # A header that worked may have stopped working: a token lives minutes (Docker Hub's 300 s),
        # a run's reads can take longer, and a token is for one repository. Answer the challenge again.
        if status == 401:
            login = self._found()
            header = str(answer.get("WWW-Authenticate", ""))
            auth = registry_http.token_auth(made, self.where, header, f"repository:{name}:pull", login)
            if auth:
                with self._lock:
                    self._auth = auth
                status, body, answer = registry_http.get(made, url, {**headers, "Authorization": auth})
        return status, body, answer

    def _found(self) -> credentials.Login | None:
        with self._lock:
            if self._login is None:
                where = self.where
                self._login = (credentials.find(where.host, self.auth_files, self.runner, server=where.server),)
            return self._login[0]

    def _ok(self, status: int, what: str) -> None:
        if not 200 <= status < 300:
            msg = f"registry {self.where.name} answered HTTP {status} for {what}"
            raise RegistryUnreadable(msg)


def _digest_in(reference: str) -> str | None:
    """The digest a reference names; None for a tag (a tag cannot hold ":")."""
    return reference if ":" in reference else None

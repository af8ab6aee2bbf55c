"""What a registry holds under a tag, read without pulling: its manifest and its config's labels.

Through the registry API with requests, with the credentials of the docker
config (``auths``, or a credential helper run through the runner). Two small
GETs per image on a warm registry, where `docker pull` would write the image
into the local store and `docker manifest inspect` shows no labels (see the
README's measurements).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from xcompile import dockerconfig, preflight, reference
from xcompile.errors import CommandFailed, XcompileError
from xcompile.runner import Runner

TIMEOUT = (3.0, 10.0)
LIST_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
IMAGE_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
ACCEPT = ", ".join(LIST_TYPES + IMAGE_TYPES)


@dataclass(frozen=True)
class Remote:
    """An image or a manifest list, as the registry has it under a tag."""

    digest: str
    labels: dict[str, str] = field(default_factory=dict)
    """An image's config labels; empty for a list."""
    parts: frozenset[str] = frozenset()
    """A list's manifests, by digest; empty for an image."""
    platform: tuple[str, str, str | None] | None = None
    """An image's (os, architecture, variant), from its config; None for a list."""

    @property
    def is_list(self) -> bool:
        return bool(self.parts)


class RegistryUnreadable(XcompileError):
    """The registry would not say what it holds (exit 1, but callers build instead)."""


class Reader:
    def __init__(self, where: preflight.Registry, auth_files: tuple[Path, ...], runner: Runner) -> None:
        self.where = where
        self.auth_files = auth_files
        self.runner = runner
        self._auth: str | None = None
        """An Authorization header that worked, reused for the next requests."""

    def read(self, name: str, tag: str) -> Remote | None:
        """The tag's image or list; None when the registry has no such tag."""
        with requests.Session() as session:
            session.trust_env = False  # as preflight: the engine uses no proxy for loopback
            response = self._get(session, f"/v2/{name}/manifests/{tag}", name, {"Accept": ACCEPT})
            if response.status_code == 404:
                return None
            _raise_for(response)
            digest = response.headers.get("Docker-Content-Digest", "")
            manifest: dict[str, Any] = response.json()
            if manifest.get("mediaType") in LIST_TYPES or "manifests" in manifest:
                parts = frozenset(str(m.get("digest")) for m in manifest.get("manifests") or [])
                return Remote(digest, parts=parts)
            config_digest = (manifest.get("config") or {}).get("digest")
            if not config_digest:
                return Remote(digest)  # a schema 1 manifest: no labels to compare
            blob = self._get(session, f"/v2/{name}/blobs/{config_digest}", name, {})
            _raise_for(blob)
            config = json.loads(blob.content)
            labels = (config.get("config") or {}).get("Labels") or {}
            platform = (str(config.get("os", "")), str(config.get("architecture", "")), config.get("variant") or None)
            return Remote(digest, labels={str(k): str(v) for k, v in labels.items()}, platform=platform)

    def _get(self, session: requests.Session, path: str, name: str, headers: dict[str, str]) -> requests.Response:
        url = self.where.url + path
        try:
            if self._auth:
                headers = {**headers, "Authorization": self._auth}
            response = session.get(url, headers=headers, timeout=TIMEOUT)
            if response.status_code == 401 and not self._auth:
                self._auth = self._answer(session, response.headers.get("WWW-Authenticate", ""), name)
                if self._auth:
                    response = session.get(url, headers={**headers, "Authorization": self._auth}, timeout=TIMEOUT)
        except requests.RequestException as err:
            raise RegistryUnreadable(f"registry {self.where.name}: {type(err).__name__}") from None
        return response

    def _answer(self, session: requests.Session, challenge: str, name: str) -> str | None:
        """The Authorization header for a 401's challenge: Basic, or a Bearer token got with Basic."""
        user_pass = self._credentials()
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            return _basic(user_pass) if user_pass else None
        if scheme.lower() != "bearer":
            return None
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if "realm" not in fields:
            return None
        query = {"service": fields.get("service", ""), "scope": fields.get("scope") or f"repository:{name}:pull"}
        auth = (user_pass[0], user_pass[1]) if user_pass else None
        token = session.get(fields["realm"], params=query, auth=auth, timeout=TIMEOUT)
        if not token.ok:
            return None
        body = token.json()
        value = body.get("token") or body.get("access_token")
        return f"Bearer {value}" if value else None

    def _credentials(self) -> tuple[str, str] | None:
        """From the first of the engine's auth files that knows this host."""
        for auth_file in self.auth_files:
            found = self._credentials_in(dockerconfig.read(auth_file) or {})
            if found is not None:
                return found
        return None

    def _credentials_in(self, data: dict[str, Any]) -> tuple[str, str] | None:
        host = self.where.host
        for key, entry in (data.get("auths") or {}).items():
            if dockerconfig.key_host(key) == host and isinstance(entry, dict) and entry.get("auth"):
                user, _, password = base64.b64decode(str(entry["auth"])).decode("utf-8", "replace").partition(":")
                return user, password
        helper = (data.get("credHelpers") or {}).get(host) or data.get("credsStore")
        if not helper:
            return None
        try:
            # The helper prints the secret on stdout; the runner echoes only argv.
            out = self.runner.run(f"docker-credential-{helper}", "get", stdin=host)
            found = json.loads(out)
        except (CommandFailed, json.JSONDecodeError):
            return None
        return str(found.get("Username", "")), str(found.get("Secret", ""))


def _basic(user_pass: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{user_pass[0]}:{user_pass[1]}".encode()).decode()


def _raise_for(response: requests.Response) -> None:
    if not response.ok:
        raise RegistryUnreadable(f"HTTP {response.status_code} for {response.url}")


def split(image_name: str) -> tuple[str, str]:
    """A full image name as the registry API names it: (repository path, tag)."""
    repo, _, tag = image_name.rpartition(":")
    host = reference.registry_host(repo)
    path = repo[len(host) + 1 :] if host else repo
    if "/" not in path:
        path = f"library/{path}"  # Docker Hub's official images
    return path, tag

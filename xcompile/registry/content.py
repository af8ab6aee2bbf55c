"""What a registry's answer must be before it is believed: digests, manifests by media type, lists' members.

Anything else is RegistryUnreadable ("cannot read"), as for odd JSON. Each rule
is one a registry or docker itself keeps (distribution's schema2, manifestlist
and ocischema packages), so nothing a registry really serves is refused:

- a digest is ``sha256:`` and 64 lower-case hex digits, and the bytes read by
  digest hash to it; a Docker-Content-Digest of ``sha256:abc\\x1b[5mBLINK``
  was shown as the image's digest (issue 27);
- a manifest is of a type xcompile asks for, with ``schemaVersion`` 2; a
  Docker type says so in its own ``mediaType`` (OCI 1.0 may leave it to the
  Content-Type); an image has a config descriptor with a digest and a size, a
  list its ``manifests``: ``{"token": "T0K3N"}`` was read as an image without labels;
- a list has at most ``MAX_MEMBERS`` members, each a digest and a platform: a
  list of 3000 made `inspect` ask 2131 times in 120 s, and a member whose
  digest was ``latest`` was read as a tag.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from xcompile.engine import Platform
from xcompile.errors import RegistryUnreadable
from xcompile.registry import IMAGE_TYPES, LIST_TYPES, Member
from xcompile.registry.reference import DIGEST

MAX_MEMBERS = 64
"""The most members of a list that are read. Real lists hold a few platforms, and where BuildKit adds
them an attestation manifest for each: xcompile's own lists hold at most the nine arches of its table."""
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A platform's os, architecture or variant, as Go's GOOS and GOARCH and docker's variants spell them."""
_NEEDS_ITS_TYPE = (IMAGE_TYPES[0], LIST_TYPES[0])
"""Docker's types, whose ``mediaType`` distribution refuses to do without."""


def digest_of(body: bytes, what: str, *, asked: str | None = None, given: str | None = None) -> str:
    """The digest of ``body``. ``asked`` (a read by digest) and ``given`` (the registry's
    Docker-Content-Digest), where there, must be of the sha256 form and the hash of the bytes."""
    found = "sha256:" + hashlib.sha256(body).hexdigest()
    for claimed in (asked, given):
        if claimed is None:
            continue
        if not DIGEST.fullmatch(claimed):
            msg = f"{what}: the digest {claimed[:80]!r} is not sha256: and 64 hex digits"
            raise RegistryUnreadable(msg)
        if claimed != found:
            msg = f"{what}: its bytes hash to {found}, not to {claimed}"
            raise RegistryUnreadable(msg)
    return found


def kind_of(manifest: Mapping[str, Any], content_type: str, what: str) -> str:
    """The manifest's media type, one xcompile reads (LIST_TYPES, IMAGE_TYPES), with schemaVersion 2."""
    said = manifest.get("mediaType")
    kind = said if said is not None else content_type.split(";", 1)[0].strip()
    if not isinstance(kind, str) or kind not in LIST_TYPES + IMAGE_TYPES:
        msg = f"{what}: not a manifest of a type xcompile reads ({str(kind)[:80]!r})"
        raise RegistryUnreadable(msg)
    if said is None and kind in _NEEDS_ITS_TYPE:
        msg = f"{what}: a manifest without the mediaType its type requires ({kind})"
        raise RegistryUnreadable(msg)
    version = manifest.get("schemaVersion")
    if type(version) is not int or version != 2:
        msg = f"{what}: its schemaVersion is not 2"
        raise RegistryUnreadable(msg)
    return kind


def config_digest(manifest: Mapping[str, Any], what: str) -> str:
    """An image manifest's config descriptor: its digest (and it has a size)."""
    config = manifest.get("config")
    if not isinstance(config, Mapping):
        msg = f"{what}: an image manifest without a config descriptor"
        raise RegistryUnreadable(msg)
    digest, size = config.get("digest"), config.get("size")
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        msg = f"{what}: an image manifest whose config digest {str(digest)[:80]!r} is not sha256: and 64 hex digits"
        raise RegistryUnreadable(msg)
    if type(size) is not int or size < 0:
        msg = f"{what}: an image manifest whose config has no size"
        raise RegistryUnreadable(msg)
    return digest


def members(entries: object, what: str) -> tuple[Member, ...]:
    """A list's members, at most MAX_MEMBERS, each a digest and a platform."""
    if not isinstance(entries, list):
        msg = f"{what}: a manifest list {'without manifests' if entries is None else 'whose manifests are not a list'}"
        raise RegistryUnreadable(msg)
    if len(entries) > MAX_MEMBERS:
        msg = f"{what}: a manifest list of {len(entries)} members, more than the {MAX_MEMBERS} xcompile reads"
        raise RegistryUnreadable(msg)
    return tuple(_member(entry, what) for entry in entries)


def _member(entry: object, what: str) -> Member:
    digest = entry.get("digest") if isinstance(entry, Mapping) else None
    if not isinstance(digest, str):
        msg = f"{what}: a manifest list entry without a digest"
        raise RegistryUnreadable(msg)
    if not DIGEST.fullmatch(digest):
        msg = f"{what}: a manifest list entry whose digest {digest[:80]!r} is not sha256: and 64 hex digits"
        raise RegistryUnreadable(msg)
    return Member(digest, _platform(entry.get("platform") if isinstance(entry, Mapping) else None, what))


def _platform(data: object, what: str) -> Platform:
    if data is None:
        msg = f"{what}: a manifest list entry without a platform"
        raise RegistryUnreadable(msg)
    fields = data if isinstance(data, Mapping) else {}
    os_, architecture, variant = (fields.get(key) for key in ("os", "architecture", "variant"))
    if not all(isinstance(word, str) and _WORD.fullmatch(word) for word in (os_, architecture)):
        msg = f"{what}: a manifest list entry whose platform is not an os and an architecture"
        raise RegistryUnreadable(msg)
    if variant is not None and not (isinstance(variant, str) and (variant == "" or _WORD.fullmatch(variant))):
        msg = f"{what}: a manifest list entry whose platform's variant is not text"
        raise RegistryUnreadable(msg)
    return Platform(str(os_), str(architecture), variant or None)

"""Whose signature on an archive's Release counts, and checking it.

The trust root travels with xcompile, because the download exists for hosts
without apt, which rarely have Debian's keyring. ``keys/debian-archive.gpg``
is the concatenation of four files of Debian's ``debian-archive-keyring``
2023.3+deb12u2 (``/usr/share/keyrings/debian-archive-*.gpg`` on a Debian 12 host),
the keys that signed the InRelease files of bookworm, trixie, forky and sid in
November 2026:

=================================================  ========================================================
primary key fingerprint                            user id
=================================================  ========================================================
``B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8``       Debian Archive Automatic Signing Key (12/bookworm),
                                                   signing subkey ``4CB50190207B4758A3F73A796ED0E7B82643E131``
``4D64FEC119C2029067D6E791F8D2585B8783D481``       Debian Stable Release Key (12/bookworm)
``04B54C3CDCA79751B16BC6B5225629DF75B188BD``       Debian Archive Automatic Signing Key (13/trixie),
                                                   signing subkey ``B8E5F13176D2A7A75220028078DBA3BC47EF2265``
``41587F7DB8C774BCCF131416762F67A0B2C39DE4``       Debian Stable Release Key (13/trixie)
=================================================  ========================================================

Keys rather than pinned fingerprints: a fingerprint can only be checked against
a key, and the hosts this is for have none, so pins alone would leave them
with nothing to verify with. The automatic keys expire in 2031 (bookworm) and
2035 (trixie); Debian signs every suite with the two newest, so a release of
xcompile that adds forky's key when it appears keeps working.

The host's keys count as well, as apt counts them: every key in
``/etc/apt/trusted.gpg.d`` (``.gpg``, ``.asc``), and Debian's own in
``/usr/share/keyrings`` (``debian-archive-*.gpg``/``.pgp``, not the removed
keys). Other files in ``/usr/share/keyrings`` belong to third-party
repositories, which apt trusts only for their own sources (Signed-By), so they
are not trusted here for Debian's. ``--keyring`` replaces all of this.

Signatures are checked with ``gpgv`` (through the runner), as apt did up to
Debian 12. Where gpgv is missing, with ``pysequoia`` (Sequoia, the OpenPGP
implementation behind apt's ``sqv`` since Debian 13) when it is installed;
otherwise the check is refused with the fix, never skipped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xcompile.errors import CommandFailed, ProgramMissing, VerificationError
from xcompile.system.runner import Runner

BUNDLED_KEYRING = Path(__file__).with_name("keys") / "debian-archive.gpg"
HOST_KEYRING_DIRS = (Path("/usr/share/keyrings"), Path("/etc/apt/trusted.gpg.d"))
NO_VERIFIER_HINT = (
    "install gpgv (e.g. apt-get install gpgv, dnf install gnupg2, brew install gnupg), or `pip install pysequoia`"
)


@dataclass(frozen=True)
class Signer:
    """The key whose good signature was accepted."""

    fingerprint: str
    user_id: str

    def __str__(self) -> str:
        return f"{self.user_id} ({self.fingerprint})" if self.user_id else self.fingerprint


def host_keyrings(dirs: Sequence[Path] = HOST_KEYRING_DIRS) -> tuple[Path, ...]:
    """The host's keyrings that count for Debian's archive, in a stable order."""
    found: list[Path] = []
    for folder in dirs:
        try:
            names = sorted(folder.iterdir())
        except OSError:
            continue  # a host without apt has neither folder
        for path in names:
            if path.suffix not in (".gpg", ".pgp", ".asc") or not path.is_file():
                continue
            if folder.name == "keyrings" and (not path.name.startswith("debian-archive-") or "removed" in path.name):
                continue
            found.append(path)
    return tuple(found)


def keyrings(explicit: Sequence[Path] = (), dirs: Sequence[Path] = HOST_KEYRING_DIRS) -> tuple[Path, ...]:
    """``explicit`` (``--keyring``) when given, else the bundled keys plus the host's."""
    return tuple(explicit) if explicit else (BUNDLED_KEYRING, *host_keyrings(dirs))


def verify(
    runner: Runner, rings: Sequence[Path], signed: bytes, signature: bytes | None = None
) -> tuple[bytes, Signer]:
    """Check a clearsigned file (``signature`` None) or ``signed`` against a detached ``signature``.

    Returns what the signature covers and who signed it. Accepted as apt
    accepts: at least one good signature by a key in ``rings``, and no bad
    one. Debian signs each InRelease with several keys, so a key missing from
    the keyrings is not a failure while another signature is good.
    """
    seen = _seen(rings, signed, signature)
    if seen in _GOOD:
        return _GOOD[seen]
    if runner.which("gpgv") is not None:
        found = _gpgv(runner, rings, signed, signature)
    elif importlib.util.find_spec("pysequoia") is not None:
        found = _sequoia(rings, signed, signature)
    else:
        msg = "gpgv"
        raise ProgramMissing(msg, hint=f"it checks the archive's signature: {NO_VERIFIER_HINT}")
    if seen is not None:
        _GOOD[seen] = found
    return found


_GOOD: dict[str, tuple[bytes, Signer]] = {}
"""The good signatures this process has checked, by ``_seen``: a trial resolves
each qemu version from the same InRelease files, and checks each once."""


def _seen(rings: Sequence[Path], signed: bytes, signature: bytes | None) -> str | None:
    """One SHA256 of the keyrings' bytes, the signed bytes and the signature; None where
    a keyring cannot be read (the verifier then says why)."""
    digest = hashlib.sha256()
    try:
        for part in [*(ring.read_bytes() for ring in rings), signed, signature or b""]:
            digest.update(hashlib.sha256(part).digest())
    except OSError:
        return None
    return digest.hexdigest()


def _binary_keyring(path: Path, folder: Path) -> Path:
    """``path`` as gpgv can read it: an ASCII-armored key is written out in binary."""
    data = path.read_bytes()
    if not data.lstrip().startswith(b"-----BEGIN PGP"):
        return path.resolve()
    out = folder / f"{len(list(folder.iterdir()))}-{path.stem}.gpg"
    out.write_bytes(dearmor(data))
    return out


def dearmor(data: bytes) -> bytes:
    """The packets of every ASCII-armored block in ``data`` (RFC 4880 §6.2)."""
    packets = bytearray()
    inside = body = False
    for raw in data.splitlines():
        line = raw.strip()
        if line.startswith(b"-----BEGIN PGP"):
            inside, body, chunk = True, False, bytearray()
        elif line.startswith(b"-----END PGP") and inside:
            inside = False
            try:
                packets += base64.b64decode(bytes(chunk))
            except binascii.Error as err:
                msg = f"a damaged ASCII-armored key ({err})"
                raise VerificationError(msg) from err
        elif inside and not body:
            body = not line  # armor headers end at the first empty line
        elif inside and not line.startswith(b"="):  # "=XXXX" is the CRC line
            chunk += line
    return bytes(packets)


def _gpgv(runner: Runner, rings: Sequence[Path], signed: bytes, signature: bytes | None) -> tuple[bytes, Signer]:
    with tempfile.TemporaryDirectory(prefix="xcompile-gpgv-") as home:
        folder = Path(home)
        (folder / "keys").mkdir()
        # An empty home keeps ~/.gnupg/trustedkeys out of the decision.
        argv = ["gpgv", "--homedir", home, "--status-fd", "1"]
        for ring in rings:
            argv += ["--keyring", str(_binary_keyring(ring, folder / "keys"))]
        signed_file = folder / "signed"
        signed_file.write_bytes(signed)
        output = folder / "verified"
        if signature is None:
            argv += ["--output", str(output), str(signed_file)]
        else:
            (folder / "signature").write_bytes(signature)
            argv += [str(folder / "signature"), str(signed_file)]
        # Exit 1 is a bad signature, 2 a key missing from the keyring: both
        # are judged from the status lines below, not from the exit code.
        try:
            out = runner.run(*argv, timeout=60, ok_codes=(0, 1, 2))
        except CommandFailed as err:
            msg = f"gpgv failed: {err}"
            raise VerificationError(msg, detail=err.details()) from None
        lines = [line.split(" ", 3)[1:] for line in out.splitlines() if line.startswith("[GNUPG:] ")]
        status = {parts[0] for parts in lines if parts}
        if "GOODSIG" not in status or "BADSIG" in status:
            why = "a bad signature" if "BADSIG" in status else "no good signature by a trusted key"
            raise VerificationError(
                why,
                hint="the mirror is tampered with, or the keyring is not the archive's",
                detail=f"command: {shlex.join(argv)}\nstatus:\n{out.rstrip()}",
            )
        user_id = next((" ".join(p[2:]) for p in lines if p[0] == "GOODSIG"), "")
        # VALIDSIG's last field is the primary key's fingerprint.
        valid = next((p for p in (line.split() for line in out.splitlines()) if p[1:2] == ["VALIDSIG"]), [])
        fingerprint = valid[-1] if len(valid) > 2 else next((p[1] for p in lines if p[0] == "GOODSIG"), "")
        verified = signed if signature is not None else output.read_bytes()
        return verified, Signer(fingerprint.upper(), user_id)


def _sequoia(rings: Sequence[Path], signed: bytes, signature: bytes | None) -> tuple[bytes, Signer]:
    import pysequoia  # optional: only where gpgv is missing

    certs: list[Any] = []
    for ring in rings:
        data = ring.read_bytes()
        try:
            certs += pysequoia.Cert.split_bytes(dearmor(data) if data.lstrip().startswith(b"-----BEGIN") else data)
        except Exception as err:  # pysequoia raises plain exceptions for unreadable keys
            msg = f"cannot read keyring {ring}: {err}"
            raise VerificationError(msg) from err
    try:
        detached = pysequoia.Sig.from_bytes(signature) if signature is not None else None
        result = pysequoia.verify(bytes=signed, store=lambda _ids: certs, signature=detached)
    except Exception as err:  # a bad or unknown signature: Sequoia says which in the message
        msg = "no good signature by a trusted key"
        raise VerificationError(
            msg,
            hint="the mirror is tampered with, or the keyring is not the archive's",
            detail=f"sequoia: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
        ) from err
    sigs = list(result.valid_sigs)
    if not sigs:
        msg = "no good signature by a trusted key"
        raise VerificationError(msg)
    primary = str(sigs[0].certificate).upper()
    user_id = next(
        (str(u) for c in certs if str(getattr(c, "fingerprint", "")).upper() == primary for u in c.user_ids), ""
    )
    verified = signed if signature is not None else bytes(result.bytes or b"")
    return verified, Signer(primary, user_id)

"""A small Debian archive on disk, signed with a throwaway key, for tests and the benchmark.

Layout, as a mirror has it::

    <root>/dists/<suite>/InRelease | Release (+ Release.gpg)
    <root>/dists/<suite>/main/binary-<arch>/Packages.xz
    <root>/pool/main/q/qemu/<package>_<version without epoch>_<arch>.deb

The real qemu-user-static and busybox-static .debs come from the test cache
(``$XCOMPILE_TEST_CACHE``, default /var/cache/xcompile-test), fetched once
with ``apt-get download`` when missing. Synthetic .debs (written here, in
Python) keep the fault tests from moving 60 MB each.
"""

from __future__ import annotations

import email.utils
import hashlib
import io
import lzma
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from debian.debian_support import Version
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response

from xcompile.host.elf import BY_DEBIAN, host_debian_arch

QEMU = "qemu-user-static"


def test_cache_dir() -> Path:
    return Path(os.environ.get("XCOMPILE_TEST_CACHE") or "/var/cache/xcompile-test")


def real_deb(package: str, arch: str | None = None) -> Path:
    """The real .deb of ``package`` in the test cache, downloaded with apt-get once per machine."""
    arch = arch or host_debian_arch()
    cache = test_cache_dir()
    # apt-get download writes an epoch's colon as %3a; the glob does not care.
    pattern = f"{package}_*_{arch}.deb"
    found = _newest(cache.glob(pattern))
    if found:
        return found
    cache.mkdir(parents=True, exist_ok=True)
    spec = package if arch == host_debian_arch() else f"{package}:{arch}"
    argv = ["apt-get", "download", "-qq", spec]
    if subprocess.run(argv, cwd=cache, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        if subprocess.run(argv, cwd=cache, check=False).returncode != 0:
            raise RuntimeError(
                f"apt-get download {spec} failed in {cache}; for a foreign arch, "
                f"`dpkg --add-architecture {arch} && apt-get update` first (ci/provision.sh does it)"
            )
    found = _newest(cache.glob(pattern))
    if not found:
        raise RuntimeError(f"apt-get download {spec} left no {pattern} in {cache}")
    return found


def _newest(debs: Iterable[Path]) -> Path | None:
    # name_version_arch.deb, with the epoch's colon written as %3a
    return max(debs, key=lambda p: Version(unquote(p.name.split("_")[1])), default=None)


def deb_fields(deb: Path) -> dict[str, str]:
    out = subprocess.run(
        ["dpkg-deb", "--field", str(deb), "Package", "Version", "Architecture"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


# --- synthetic ELF files and .debs --------------------------------------------------------------


def tiny_elf(arch: str | None = None, *, dynamic: bool = False, size: int = 4096, machine: int | None = None) -> bytes:
    """An ELF header with one PT_LOAD (and PT_INTERP if ``dynamic``), padded with random bytes.

    It does not run; it only has to look like an executable for ``arch`` to
    the checks. Random padding keeps the .deb as big as ``size``.
    """
    spec = BY_DEBIAN[arch or host_debian_arch()]
    order = "<" if spec.elf_data == 1 else ">"
    phdrs = [(1, 0)] + ([(3, 0)] if dynamic else [])
    if spec.elf_class == 2:
        ehsize, phentsize = 64, 56
        header = b"\x7fELF" + bytes([2, spec.elf_data, 1, 0]) + bytes(8)
        header += struct.pack(
            order + "HHIQQQIHHHHHH",
            2,
            machine or spec.elf_machine,
            1,
            0x401000,
            ehsize,
            0,
            0,
            ehsize,
            phentsize,
            len(phdrs),
            0,
            0,
            0,
        )
        table = b"".join(struct.pack(order + "IIQQQQQQ", t, 5, 0, 0, 0, 0, 0, 0x1000) for t, _ in phdrs)
    else:
        ehsize, phentsize = 52, 32
        header = b"\x7fELF" + bytes([1, spec.elf_data, 1, 0]) + bytes(8)
        header += struct.pack(
            order + "HHIIIIIHHHHHH",
            2,
            machine or spec.elf_machine,
            1,
            0x10000,
            ehsize,
            0,
            0,
            ehsize,
            phentsize,
            len(phdrs),
            0,
            0,
            0,
        )
        table = b"".join(struct.pack(order + "IIIIIIII", t, 0, 0, 0, 0, 0, 5, 0x1000) for t, _ in phdrs)
    body = header + table
    return body + os.urandom(max(0, size - len(body)))


def _tar_xz(files: Mapping[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dirs: set[str] = set()
        for name in files:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(f"./{d}/")
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    # dpkg-deb's 8 MiB dictionary, so decompressing costs what a real package
    # costs; preset 0's fast match finder, since the payloads are random bytes.
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 0, "dict_size": 8 << 20}]
    return lzma.compress(raw.getvalue(), format=lzma.FORMAT_XZ, filters=filters)


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members:
        out.append(f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode("ascii"))
        out.append(data + (b"\n" if len(data) % 2 else b""))
    return b"".join(out)


def build_deb(
    path: Path,
    *,
    package: str = QEMU,
    version: str = "1:7.2+dfsg-7",
    arch: str | None = None,
    files: Mapping[str, bytes] | None = None,
    data_tar_xz: bytes | None = None,
) -> Path:
    """A minimal .deb (ar of debian-binary, control.tar.xz, data.tar.xz) holding ``files``
    (or the ready ``data_tar_xz``)."""
    arch = arch or host_debian_arch()
    control = (
        f"Package: {package}\nVersion: {version}\nArchitecture: {arch}\n"
        f"Maintainer: xcompile tests <tests@example.invalid>\n"
        f"Description: synthetic package for xcompile's tests\n"
    ).encode()
    path.write_bytes(
        _ar(
            [
                ("debian-binary", b"2.0\n"),
                ("control.tar.xz", _tar_xz({"control": control})),
                ("data.tar.xz", data_tar_xz if data_tar_xz is not None else _tar_xz(files or {})),
            ]
        )
    )
    return path


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def zeros_tar_xz(member: str, size: int, *, truthful: bool = True) -> bytes:
    """A data.tar.xz whose ``member`` is ``size`` zero bytes, a few kB compressed, streamed (never
    ``size`` bytes in memory). Not ``truthful``: the header claims ``size`` and 4 KiB follow."""
    out = io.BytesIO()
    with lzma.open(out, "wb", format=lzma.FORMAT_XZ, preset=0) as xz:
        info = tarfile.TarInfo(f"./{member}")
        info.size, info.mode = size, 0o755
        if truthful:
            with tarfile.open(fileobj=xz, mode="w", format=tarfile.GNU_FORMAT) as tar:
                tar.addfile(info, _Zeros(size))
        else:
            xz.write(info.tobuf(tarfile.GNU_FORMAT) + bytes(4096) + bytes(2 * tarfile.BLOCKSIZE))
    return out.getvalue()


# --- keys ---------------------------------------------------------------------------------------


@dataclass
class GpgKey:
    """A throwaway signing key in its own GNUPGHOME; ``keyring`` is its public key, exported."""

    home: Path
    fingerprint: str
    keyring: Path

    @classmethod
    def create(cls, name: str) -> GpgKey:
        # A short home: gpg-agent's socket path must fit in 108 bytes.
        home = Path(tempfile.mkdtemp(prefix="xcgpg-"))
        home.chmod(0o700)
        uid = f"{name} <{name.lower().replace(' ', '-')}@example.invalid>"
        cls._gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
        colons = cls._gpg(home, "--with-colons", "--list-keys").stdout
        fingerprint = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
        keyring = home / "public.gpg"
        # Straight to the file: text-mode pipes translate \r bytes and corrupt the key.
        cls._gpg(home, "--output", str(keyring), "--export", fingerprint)
        return cls(home, fingerprint, keyring)

    @staticmethod
    def _gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["gpg", "--batch", "--yes", "--homedir", str(home), "--pinentry-mode", "loopback", *args],
            check=True,
            capture_output=True,
            encoding="latin-1",
            env={**os.environ, "GNUPGHOME": str(home)},
        )

    def clearsign(self, src: Path, dst: Path) -> None:
        self._gpg(self.home, "--local-user", self.fingerprint, "--clearsign", "--output", str(dst), str(src))

    def detach_sign(self, src: Path, dst: Path) -> None:
        self._gpg(
            self.home, "--local-user", self.fingerprint, "--armor", "--detach-sign", "--output", str(dst), str(src)
        )

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"], check=False, capture_output=True
        )
        shutil.rmtree(self.home, ignore_errors=True)


def key_fixture(name: str) -> Any:
    """A test module's signing key, made once for the module and removed after it:
    ``key = key_fixture("Pin Archive")`` (the name is the key's user id, which signers show)."""
    import pytest  # only the tests take fixtures; the benchmarks import this module too

    @pytest.fixture(scope="module")
    def key() -> Iterator[GpgKey]:
        made = GpgKey.create(name)
        yield made
        made.close()

    return key


# --- the archive --------------------------------------------------------------------------------


@dataclass
class Entry:
    package: str
    version: str
    arch: str
    deb: Path
    filename: str
    paragraph: str | None = None
    """The real Packages paragraph, served as it is (its Filename, Size and SHA256 included)."""
    depends: str = ""


@dataclass(frozen=True)
class RealPackage:
    """A .deb fetched from the real archive by ci/fetch-deb.sh, with its real Packages paragraph."""

    deb: Path
    paragraph: str

    @property
    def name(self) -> str:
        return self.field("Package")

    def field(self, key: str) -> str:
        for line in self.paragraph.splitlines():
            if line.startswith(f"{key}: "):
                return line.split(": ", 1)[1]
        raise KeyError(key)

    def relisted(self, version: str) -> RealPackage:
        """The same .deb listed as ``version``, at a pool name of that version: the shape of a
        backport (whose .deb the tests do not have) for the index, whatever the .deb's control says."""
        pool = f"pool/main/q/qemu/{self.name}_{version.split(':', 1)[-1]}_{self.field('Architecture')}.deb"
        swap = {"Version": version, "Filename": pool}
        lines = [
            f"{key}: {swap[key]}" if (key := line.partition(": ")[0]) in swap else line
            for line in self.paragraph.splitlines()
        ]
        return RealPackage(self.deb, "\n".join(lines) + "\n")


def real_suite_dir(codename: str) -> Path:
    return test_cache_dir() / "debian" / codename


def real_package(codename: str, package: str) -> RealPackage:
    """``package`` of the real ``codename`` for this host, fetched once per machine (ci/fetch-deb.sh)."""
    arch = host_debian_arch()
    folder = real_suite_dir(codename)
    deb, para = folder / f"{package}_{arch}.deb", folder / f"{package}_{arch}.paragraph"
    if not deb.is_file() or not para.is_file():
        script = Path(__file__).resolve().parents[1] / "ci" / "fetch-deb.sh"
        subprocess.run(["bash", str(script), str(test_cache_dir() / "debian"), codename, package], check=True)
    return RealPackage(deb, para.read_text())


def real_inrelease(codename: str) -> Path:
    """The real, Debian-signed InRelease that ci/fetch-deb.sh kept for ``codename``."""
    path = real_suite_dir(codename) / "InRelease"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: run ci/provision.sh (it fetches the real packages)")
    return path


@dataclass
class Archive:
    """An archive under ``root`` for one suite and architecture; call :meth:`write` after adding."""

    root: Path
    suite: str = "bookworm"
    arch: str = field(default_factory=host_debian_arch)
    entries: list[Entry] = field(default_factory=list)

    def add(
        self,
        deb: Path,
        *,
        package: str | None = None,
        version: str | None = None,
        arch: str | None = None,
        depends: str = "",
    ) -> Entry:
        if package is None or version is None or arch is None:
            fields = deb_fields(deb)
            package = package or fields["Package"]
            version = version or fields["Version"]
            arch = arch or fields["Architecture"]
        plain = version.split(":", 1)[-1]  # the pool's file name has no epoch
        filename = f"pool/main/q/qemu/{package}_{plain}_{arch}.deb"
        target = self.root / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        # A symlink: the real qemu .deb is 60 MB and werkzeug follows links.
        target.symlink_to(deb.resolve())
        entry = Entry(package, version, arch, deb, filename, depends=depends)
        self.entries.append(entry)
        return entry

    def add_real(self, real: RealPackage) -> Entry:
        """A real package at its real Filename, listed with its real paragraph."""
        filename = real.field("Filename")
        target = self.root / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        target.symlink_to(real.deb.resolve())
        entry = Entry(
            real.name,
            real.field("Version"),
            real.field("Architecture"),
            real.deb,
            filename,
            real.paragraph.strip() + "\n",
        )
        self.entries.append(entry)
        return entry

    @property
    def dists(self) -> Path:
        return self.root / "dists" / self.suite

    @property
    def packages_xz(self) -> Path:
        return self.dists / "main" / f"binary-{self.arch}" / "Packages.xz"

    def packages_text(self) -> bytes:
        paras = []
        for e in self.entries:
            if e.paragraph is not None:
                paras.append(e.paragraph)
                continue
            data = e.deb.read_bytes()
            paras.append(
                f"Package: {e.package}\nVersion: {e.version}\nArchitecture: {e.arch}\n"
                f"Maintainer: xcompile tests <tests@example.invalid>\n"
                + (f"Depends: {e.depends}\n" if e.depends else "")
                + f"Filename: {e.filename}\nSize: {len(data)}\n"
                f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
                f"Description: {e.package} for xcompile's tests\n"
                f" A continuation line: Package: {e.package}\n"
            )
        return "\n".join(paras).encode()

    def write(
        self,
        key: GpgKey | None = None,
        *,
        inrelease: bool = True,
        release_gpg: bool = False,
        suite_field: str | None = None,
        codename: str | None = None,
        packages: bytes | None = None,
        date: float | None = None,
        valid_until: float | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        """Write Packages.xz, Release, and (with ``key``) InRelease and/or Release.gpg.

        ``date`` and ``valid_until`` are Unix times (default: now, and none);
        ``fields`` are more Release fields (``NotAutomatic: yes``).
        """
        self.packages_xz.parent.mkdir(parents=True, exist_ok=True)
        text = self.packages_text() if packages is None else packages
        self.packages_xz.write_bytes(lzma.compress(text))
        (self.packages_xz.parent / "Packages").write_bytes(text)
        listing = []
        for path in sorted(self.dists.glob("main/binary-*/Packages*")):
            data = path.read_bytes()
            listing.append(f" {hashlib.sha256(data).hexdigest()} {len(data):>8} {path.relative_to(self.dists)}")
        release = self.dists / "Release"
        release.write_text(
            f"Origin: xcompile tests\nLabel: xcompile tests\nSuite: {suite_field or 'oldstable'}\n"
            f"Codename: {codename or self.suite}\nDate: {email.utils.formatdate(date, usegmt=True)}\n"
            + (f"Valid-Until: {email.utils.formatdate(valid_until, usegmt=True)}\n" if valid_until else "")
            + "".join(f"{name}: {value}\n" for name, value in (fields or {}).items())
            + f"Architectures: {self.arch}\nComponents: main\n"
            f"Description: archive for xcompile's tests\nSHA256:\n" + "\n".join(listing) + "\n"
        )
        for name in ("InRelease", "Release.gpg"):
            (self.dists / name).unlink(missing_ok=True)
        if key is not None and inrelease:
            key.clearsign(release, self.dists / "InRelease")
        if key is not None and release_gpg:
            key.detach_sign(release, self.dists / "Release.gpg")


TRIXIE_BACKPORT = "1:11.1.3+ds-2~bpo13+1"
"""The qemu-user of the real trixie-backports (NOTES.md, third round)."""
WEEK = 7 * 24 * 3600


def real_mirror(root: Path, key: GpgKey | None, *, date: float | None = None) -> dict[str, Archive]:
    """The qemu of a Debian mirror's suites, shaped as the real archive has them, under one ``root``:

    - bookworm (Suite: oldstable, served as dists/oldstable too): qemu-user-static 7.2, the binaries in it;
    - trixie (Suite: stable, and dists/stable): qemu-user-static, transitional, linking into qemu-user 10.0;
    - trixie-backports: qemu-user only, ``NotAutomatic: yes``, valid for a week from its Date.

    The backport is trixie's real qemu-user .deb re-listed under TRIXIE_BACKPORT in its paragraph
    (Version and Filename; Size and SHA256 are the .deb's): no backport .deb is fetched for the
    tests, so its binaries say 10.0.13. ``date`` is each Release's Date (a Unix time; default now);
    ``key`` None leaves the Releases unsigned.
    """
    when = time.time() if date is None else date
    suites = {name: Archive(root, suite=name) for name in ("bookworm", "trixie", "trixie-backports")}
    suites["bookworm"].add_real(real_package("bookworm", "qemu-user-static"))
    suites["bookworm"].write(key, suite_field="oldstable", date=when)
    suites["trixie"].add_real(real_package("trixie", "qemu-user-static"))
    suites["trixie"].add_real(real_package("trixie", "qemu-user"))
    suites["trixie"].write(key, suite_field="stable", date=when)
    suites["trixie-backports"].add_real(real_package("trixie", "qemu-user").relisted(TRIXIE_BACKPORT))
    suites["trixie-backports"].write(
        key,
        suite_field="stable-backports",
        date=when,
        valid_until=when + WEEK,
        fields={"NotAutomatic": "yes", "ButAutomaticUpgrades": "yes"},
    )
    # A mirror's symbolic names are links to the codenames' folders.
    for name, codename in (("oldstable", "bookworm"), ("stable", "trixie")):
        (root / "dists" / name).unlink(missing_ok=True)
        (root / "dists" / name).symlink_to(codename)
    return suites


def file_handler(root: Path, prefix: str = "/debian") -> Callable[[Request], Response]:
    """A pytest-httpserver handler serving ``root`` under ``prefix``, with Range support (206)."""

    def handle(request: Request) -> Response:
        rel = request.path.removeprefix(prefix).lstrip("/")
        path = (root / rel).resolve() if rel else root
        if ".." in rel.split("/") or not path.is_file():
            return Response("not found", status=404)
        return send_file(path, request.environ, conditional=True, etag=False)

    return handle

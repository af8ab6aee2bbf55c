"""What users install is what is tested: the sdist and the wheel that `python -m build`
makes from a `git archive` of this tree, and `pip install .` of that archive, each in
a fresh venv outside the checkout and run from an empty folder, with no PYTHONPATH.

The editable install that the rest of the suite runs reads the checkout, so a
package missing from the distribution (the third round's wheel had no
xcompile/engine/ and no xcompile/registry/) imports there and fails only for users.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, Registry, docker

from xcompile import __version__

KINDS = ("pip-install-dot", "wheel", "sdist")
"""How a user gets xcompile: the README's `pip install .`, the wheel, the sdist."""


def run(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run([str(arg) for arg in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def archive_of_this_tree(dest: Path) -> Path:
    """`git archive` of the checkout, with its uncommitted changes to tracked files
    (`git stash create` makes that commit without touching the tree): what a
    clone of main holds, not whatever else lies in the folder."""
    try:
        stash = run("git", "-C", REPO, "stash", "create").strip()
    except (FileNotFoundError, AssertionError) as err:
        pytest.fail(f"the installed-tool tests need the git checkout of xcompile and git: {err}")
    tree = dest / "xcompile-src"
    tree.mkdir()
    archive = dest / "xcompile-src.tar"
    run("git", "-C", REPO, "archive", "--output", archive, stash or "HEAD")
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


@dataclass(frozen=True)
class Dists:
    tree: Path
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist and the wheel, built as a release would build them (isolated, from the archive)."""
    top = tmp_path_factory.mktemp("dist")
    tree = archive_of_this_tree(top)
    out = top / "dist"
    run(sys.executable, "-m", "build", "--outdir", out, tree)
    (wheel,) = out.glob("xcompile-*.whl")
    (sdist,) = out.glob("xcompile-*.tar.gz")
    return Dists(tree, wheel, sdist)


def shipped_files() -> set[str]:
    """Every file of the package in the checkout that a user needs: the modules and the data."""
    package = REPO / "xcompile"
    return {
        str(path.relative_to(REPO))
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_wheel_holds_every_module_and_data_file(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as wheel:
        held = {name for name in wheel.namelist() if name.startswith("xcompile/")}
    expected = shipped_files()
    assert {
        "xcompile/engine/__init__.py",
        "xcompile/registry/__init__.py",
        "xcompile/archive/keys/debian-archive.gpg",
    } <= (expected)
    assert held == expected, f"missing from the wheel: {sorted(expected - held)}; extra: {sorted(held - expected)}"


def test_the_sdist_holds_every_module_and_data_file(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as sdist:
        top = f"{dists.sdist.name.removesuffix('.tar.gz')}/"
        held = {
            member.name.removeprefix(top)
            for member in sdist.getmembers()
            if member.isfile() and member.name.startswith(f"{top}xcompile/")
        }
    assert shipped_files() <= held, f"missing from the sdist: {sorted(shipped_files() - held)}"


def test_twine_check_passes_on_both(dists: Dists) -> None:
    out = run(sys.executable, "-m", "twine", "check", "--strict", dists.wheel, dists.sdist)
    assert out.count("PASSED") == 2, out


@dataclass(frozen=True)
class Installed:
    kind: str
    bin: Path
    """The venv's bin folder."""
    env: dict[str, str]
    """A user's environment: no PYTHONPATH, no XCOMPILE_*, a docker config and TMPDIR of the test's own."""
    empty: Path
    """An empty folder to run from: no setup.cfg, no checkout."""

    def xcompile(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / "xcompile"), *args]
        return subprocess.run(argv, cwd=self.empty, env=self.env, capture_output=True, text=True, timeout=timeout)


def fresh_venv(folder: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    return folder / "bin"


@pytest.fixture(scope="module", params=KINDS)
def installed(request: pytest.FixtureRequest, dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    top = tmp_path_factory.mktemp(request.param)
    bin_dir = fresh_venv(top / "venv")
    target = {"pip-install-dot": ".", "wheel": str(dists.wheel), "sdist": str(dists.sdist)}[request.param]
    # `pip install .` runs in the archive's folder, as the README has it; the others anywhere.
    run(bin_dir / "pip", "install", "-q", target, cwd=dists.tree)
    empty = top / "empty"
    empty.mkdir()
    (top / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XCOMPILE_") and k != "PYTHONPATH"}
    env |= {"DOCKER_CONFIG": str(top / "docker-config"), "TMPDIR": str(top / "tmp")}
    return Installed(request.param, bin_dir, env, empty)


def test_the_installed_package_is_the_one_that_runs(installed: Installed) -> None:
    where = run(installed.bin / "python", "-c", "import xcompile; print(xcompile.__file__)", cwd=installed.empty)
    assert "/site-packages/xcompile/" in where and not where.startswith(str(REPO)), where


def test_help_and_version(installed: Installed) -> None:
    helped = installed.xcompile("--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("build", "qemu", "trial", "inspect", "matrix", "join", "doctor", "experimental"):
        assert f"\n    {command} " in helped.stdout, f"{command} missing from:\n{helped.stdout}"
    version = [str(installed.bin / "python"), "-m", "xcompile", "--version"]
    shown = subprocess.run(version, cwd=installed.empty, env=installed.env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    code = "import importlib.metadata as m; print(m.version('xcompile'))"
    metadata = run(installed.bin / "python", "-c", code, cwd=installed.empty).strip()
    assert metadata == __version__
    assert shown.stdout.split() == ["xcompile", metadata], shown.stdout


def test_doctor_finds_the_bundled_keys(installed: Installed) -> None:
    found = installed.xcompile("doctor", "--no-push")
    keys = [line for line in found.stdout.splitlines() if line[6:].startswith("keys ")]
    assert len(keys) == 1, found.stdout + found.stderr
    bundled = installed.bin.parent / "lib"
    (ring,) = bundled.glob("python3*/site-packages/xcompile/archive/keys/debian-archive.gpg")
    assert keys[0].split()[:2] == ["pass", "keys"], keys
    assert f"the bundled Debian archive keys at {ring}," in keys[0]
    assert ring.read_bytes() == (REPO / "xcompile" / "archive" / "keys" / "debian-archive.gpg").read_bytes()


@pytest.fixture
def clean_tags() -> Iterator[list[str]]:
    """Local tags a test makes (a pull back); removed afterwards."""
    tags: list[str] = []
    yield tags
    if tags:
        docker("rmi", *tags, check=False)


@pytest.mark.parametrize("host_binfmt", ["seed"], indirect=True)
def test_one_proven_push_and_pull_back(
    installed: Installed, host_binfmt: str, registry: Registry, armhf_base: str, clean_tags: list[str]
) -> None:
    """The default job's shape (arm32v7, one tag) from the empty folder. The host
    registers qemu-arm without F at /usr/bin/qemu-arm-static, as the CI hosts
    these images are for do: the image pulled back runs only through the
    qemu inside it."""
    name = f"installed-{installed.kind}-{uuid.uuid4().hex[:6]}/rpi-python"
    repo = f"{registry.host}/{name}"
    built = installed.xcompile("build", "--base", armhf_base, "--repo", repo, "--tag", "3.7", "--report", "report.json")
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Traceback" not in built.stderr
    report = json.loads((installed.empty / "report.json").read_text())
    (image,) = report["images"]
    assert (image["name"], image["status"], image["platform"]) == (f"{repo}:3.7", "pushed", "linux/arm/v7")
    # Pushed only once proven: the image's own qemu ran its probe (echoed as it ran).
    assert "--entrypoint /usr/bin/qemu-arm-static" in built.stderr, built.stderr
    assert registry.tags(name) == ["3.7"]
    digest, _ = registry.manifest(name, "3.7")
    assert image["digest"] == digest

    ref = f"{repo}:3.7"
    docker("rmi", ref, check=False)
    clean_tags.append(ref)
    docker("pull", "-q", "--platform", "linux/arm/v7", ref)
    ran = docker("run", "--rm", "--platform", "linux/arm/v7", ref, "uname", "-m")
    assert ran.stdout.strip() == "armv7l"


def test_pipx_installs_it(dists: Dists, tmp_path: Path) -> None:
    home = tmp_path / "pipx"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XCOMPILE_", "PIPX_")) and k != "PYTHONPATH"}
    env |= {"PIPX_HOME": str(home), "PIPX_BIN_DIR": str(home / "bin"), "PIPX_MAN_DIR": str(home / "man")}
    run(sys.executable, "-m", "pipx", "install", "--python", sys.executable, ".", cwd=dists.tree, env=env)
    empty = tmp_path / "empty"
    empty.mkdir()
    shown = run(home / "bin" / "xcompile", "--version", cwd=empty, env=env)
    assert shown.split() == ["xcompile", __version__]

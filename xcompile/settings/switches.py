"""The command line's switches, each named once from its ``Config`` key, in groups that commands combine.

A command takes only the groups it uses: `matrix` has no `--no-verify`, and
`xcompile --no-verify join` is refused rather than ignored. Every value goes
to ``config.load`` unparsed, so that a switch and a file say the same errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plumbum import cli

from xcompile import engine
from xcompile.errors import UsageError
from xcompile.host import platforms
from xcompile.settings import config, keys


class Setting(cli.SwitchAttr[Any]):
    """A switch for one ``Config`` key: its spellings come from the key and ``keys.ALIASES``."""

    def __init__(self, key: str, help: str, argname: str = "VALUE") -> None:
        self.key = key
        names = [f"--{name}" for name in keys.switch_names(key)]
        super().__init__(names, str, default=None, list=keys.repeatable(key), argname=argname, help=help)

    def given(self, value: Any) -> Any:
        # Not given: None (a repeatable switch, []). Given empty (`--repo "$REPO"` with REPO
        # unset) is given: its key refuses it, rather than the file's or the default taking over.
        return None if value is None or value == [] else value


class Toggle(cli.Flag):
    """A flag for a true/false ``Config`` key: ``--KEY`` where it defaults to
    false, ``--no-KEY`` where it defaults to true (--no-push)."""

    def __init__(self, key: str, help: str, *, short: str | None = None) -> None:
        self.key = key
        self.turns_off = bool(config.DEFAULTS[key])
        prefix = "--no-" if self.turns_off else "--"
        names = [f"{prefix}{name}" for name in keys.switch_names(key)] + ([short] if short else [])
        super().__init__(names, help=help)

    def given(self, value: Any) -> bool | None:
        return (not self.turns_off) if value else None


def given(app: cli.Application) -> dict[str, Any]:
    """The switches given on the command line for ``app``: its parent's first,
    each of which ``app`` must have too (a switch a command ignores is refused)."""
    values: dict[str, Any] = {}
    own = {switch.key: name for name, switch in _switches(type(app))}
    parent = app.parent
    if isinstance(parent, cli.Application) and parent is not app:
        for key, value in given(parent).items():
            if key not in own and key != "config_file":
                toggle = next((s for _, s in _switches(type(parent)) if s.key == key and isinstance(s, Toggle)), None)
                shown = ("no-" if toggle is not None and toggle.turns_off else "") + keys.switch_names(key)[0]
                msg = f"--{shown} is not a switch of `{app.PROGNAME}`"
                raise UsageError(msg, hint=f"see `{app.PROGNAME} --help`")
            values[key] = value
    config_file = getattr(app, "config_file", None)
    if config_file is not None:
        values["config_file"] = config_file
    for name, switch in _switches(type(app)):
        value = switch.given(getattr(app, name))
        if value is not None:
            values[switch.key] = value
    return values


def _switches(kind: type) -> list[tuple[str, Setting | Toggle]]:
    return [(name, found) for name in dir(kind) if isinstance(found := getattr(kind, name), (Setting, Toggle))]


# --- the groups ------------------------------------------------------------------


class Common(cli.Application):
    """Switches every command takes."""

    config_file = cli.SwitchAttr(
        "--config",
        str,
        default=None,
        argname="FILE",
        help="read settings from FILE ([xcompile] in .cfg/.ini, [tool.xcompile] in .toml)",
    )
    dry_run = Toggle("dry_run", "print every command and edit, run and write nothing")
    verbose = Toggle("verbose", "show failing commands' output and tracebacks", short="-v")


class Targets(Common):
    arches = Setting(
        "arches",
        argname="ARCH",
        help=f"target architecture (repeatable); known: {', '.join(a.name for a in platforms.ARCHES)}",
    )


class Tags(Targets):
    tags = Setting("tags", "a tag to build (repeatable; replaces the configured list)", argname="TAG")


class Cells(Tags):
    only = Setting(
        "only",
        "build, prove and push only this cell (repeatable), as a CI matrix job does; never a"
        " manifest list (see `xcompile matrix` and `xcompile join`)",
        argname="TAG/ARCH",
    )


class QemuHost(Common):
    qemu_host = Setting(
        "qemu_host",
        "the machine that will use the images: the qemu inside is built for its CPU (default amd64,"
        " whatever machine xcompile runs on)",
        argname="ARCH",
    )


class ArchiveMirror(Common):
    """A Debian archive and whose keys count: where qemu is downloaded from, and what `verify` checks against."""

    mirror = Setting("mirror", "Debian archive to download qemu from", argname="URL")
    suite = Setting("suite", "its suite: stable (the default), oldstable, testing, or a codename", argname="SUITE")
    keyring = Setting(
        "keyring",
        "check its signature with FILE only (default: Debian's keys, bundled, and the host's)",
        argname="FILE",
    )
    allow_unsigned = Toggle("allow_unsigned", "take an archive whose signature cannot be verified (warns)")
    offline = Toggle("offline", "use only qemu already on PATH or in the cache")


class QemuMirror(Targets, ArchiveMirror, QemuHost):
    """Where the static qemu comes from, when it is not on PATH."""

    qemu_source = Setting(
        "qemu_source",
        f"where qemu comes from: {', '.join(keys.QEMU_SOURCES)}; auto (the"
        " default) tries PATH, then apt, then the download",
        argname="SOURCE",
    )


class QemuSource(QemuMirror):
    """Which qemu: a pinned version, or one binary from a URL."""

    qemu_version = Setting(
        "qemu_version",
        "the qemu to use: a Debian version (1:7.2+dfsg-7+deb12u18+b3) or an upstream prefix (7.2, 10.0, 11.1),"
        " the newest of which any suite of the mirror holds",
        argname="VERSION",
    )
    qemu_url = Setting("qemu_url", "a static qemu binary to download", argname="URL")
    qemu_sha256 = Setting("qemu_sha256", "its SHA256 (required)", argname="HEX")


class EngineSwitch(Common):
    """The switch that chooses the container engine."""

    engine = Setting(
        "engine",
        f"container engine: {', '.join(engine.CHOICES)} (default docker; auto: docker"
        " when its daemon answers, else podman)",
        argname="ENGINE",
    )


class Registry(EngineSwitch):
    repo = Setting("repo", "repository to build and push to", argname="NAME")


class Images(Tags, QemuMirror, EngineSwitch):
    """What a trial of the images needs: which images, and how each is built and proven."""

    image = Setting("image", "official image to start from (base: <arch namespace>/NAME)", argname="NAME")
    base = Setting(
        "base", "foreign base image name, without tag; {namespace} stands for the arch's namespace", argname="IMAGE"
    )
    jobs = Setting("jobs", f"images at once (default {keys.DEFAULT_JOBS})", argname="N")
    proof_timeout = Setting(
        "proof_timeout",
        f"seconds each image's emulated proof run may take (default {keys.DEFAULT_PROOF_TIMEOUT})",
        argname="SECONDS",
    )
    proof_command = Setting(
        "proof_command",
        "also run this shell line in every image under emulation before the push, as a downstream RUN runs it",
        argname="COMMAND",
    )
    pull = Setting("pull", "pull each base first: always (the default), missing, never", argname="POLICY")


class Build(Images, Cells, QemuSource, Registry):
    push = Toggle("push", "build only, do not push")
    verify = Toggle("verify", "do not prove each image (labels, qemu inside, runs) before pushing")
    manifest = Toggle("manifest", "with several --arch, do not join each tag in a manifest list")
    keep_going = Toggle("keep_going", "go on with the other images after a failure")
    report = Setting("report", "also write the summary as JSON", argname="FILE")
    rebuild = Setting(
        "rebuild",
        "changed (the default): only images whose base, qemu or recipe differ from the registry's; always: every image",
        argname="WHEN",
    )


def path_or_none(switch: str, value: str | None, what: str) -> Path | None:
    """A path switch's value; given empty (`--config "$CFG"` with CFG unset) is refused,
    as every setting's is, rather than read as not given."""
    if value is None:
        return None
    if not value:
        msg = f"{switch}: expected {what}, got ''"
        raise UsageError(msg)
    return Path(value)

"""The summary table and the JSON report of a run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from xcompile import __version__
from xcompile.errors import EnvironmentProblem
from xcompile.pipeline.plan import ProofRun, Result
from xcompile.system import files

COLUMNS = ("image", "platform", "status", "digest", "seconds", "qemu")


def as_dict(result: Result) -> dict[str, Any]:
    return {
        "xcompile": __version__,
        "engine": {"name": result.versions.engine, "client": result.versions.client, "server": result.versions.server},
        "images": [
            {
                "name": o.name,
                "base": o.base,
                "platform": o.platform,
                "status": o.status,
                "digest": o.digest,
                "seconds": round(o.seconds, 2),
                "error": o.error,
                "qemu": {"version": o.qemu_version, "source": o.qemu_source, "host": o.qemu_host},
                "ran": o.ran,
                "proof_command": None if o.proof is None else _proof(o.proof),
            }
            for o in result.outcomes
        ],
    }


def _proof(run: ProofRun) -> dict[str, object]:
    return {"command": run.command, "exit": run.exit, "seconds": round(run.seconds, 2), "qemu": run.qemu}


def table(result: Result) -> str:
    rows = [COLUMNS] + [
        (
            o.name,
            o.platform,
            o.status,
            _short(o.digest),
            f"{o.seconds:.1f}",
            _qemu(o.qemu_version) + (f" for {o.qemu_host}" if o.qemu_host and o.qemu_version else ""),
        )
        for o in result.outcomes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    errors = [f"{o.name}: {o.error}" for o in result.outcomes if o.error]
    # A proof command run under the host's qemu (binfmt F) proves that qemu, not the shipped one: said.
    # In a dry run nothing ran: the line says what would.
    hosts = [
        f"{o.name}: its proof command {'would run' if o.status == 'planned' else 'ran'} under {o.proof.qemu}"
        for o in result.outcomes
        if o.proof is not None and o.proof.host_qemu is not None
    ]
    return "\n".join(lines + errors + hosts)


def write(result: Result, path: Path) -> None:
    try:
        files.write_atomic(path, json.dumps(as_dict(result), indent=2) + "\n")
    except OSError as err:
        msg = f"cannot write report {path}: {err.strerror or err}"
        raise EnvironmentProblem(msg) from None


def _short(digest: str | None) -> str:
    return digest[: len("sha256:") + 12] if digest else "-"


def _qemu(version: str | None) -> str:
    """A qemu version as the table shows it: 1:10.0.13+ds-0+deb13u1 as 10.0.13, a --version line by its number."""
    if not version:
        return "-"
    found = re.search(r"version (\S+)", version)
    if found:
        return found.group(1)
    return version.split(":", 1)[-1].split("+", 1)[0].split("-", 1)[0]

"""A loopback alias from the host's /etc/hosts, in a mount namespace of the test's own (root)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_an_etc_hosts_alias_of_loopback_is_loopback(tmp_path: Path) -> None:
    """A name /etc/hosts gives 127.0.0.1 (in a mount namespace of the test's own, as root)."""
    hosts = tmp_path / "hosts"
    aliases = "\n127.0.0.1 xcompile-alias\n10.11.12.13 elsewhere.test\n"
    hosts.write_text(Path("/etc/hosts").read_text() + aliases)
    code = (
        "from xcompile.registry.reference import plain_http as p; print(p('xcompile-alias:5/a'), p('elsewhere.test/a'))"
    )
    script = 'mount --bind "$1" /etc/hosts && exec "$2" -c "$3"'
    shown = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "-", hosts, sys.executable, code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (shown.returncode, shown.stdout) == (0, "True False\n"), shown.stderr

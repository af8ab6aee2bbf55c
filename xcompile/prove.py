"""Step 4: prove a built image before it is pushed — gather what to judge, and judge it (proof.py).

Three looks, at about the cost of one container run: the image config (one
`image inspect`), qemu's bytes at each path (the layer folders, else copied
out of a container that never starts), and one emulated run.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable
from pathlib import Path

from xcompile import engine, files, proof
from xcompile.context import Workspace
from xcompile.errors import CommandFailed, XcompileError
from xcompile.plan import Image
from xcompile.runner import Runner

Say = Callable[[str, "str | None"], None]
REMOVE_TIMEOUT = 60
"""Seconds to remove a proof container that outlived its run: an engine that
lost the container's exit does not answer at all."""


class Prover:
    def __init__(self, runner: Runner, shapes: engine.Engine, say: Say, *, timeout: float) -> None:
        self.runner = runner
        self.shapes = shapes
        self.say = say
        self.timeout = timeout

    def verify(self, image: Image, qemu_sha256: str, work: Workspace) -> None:
        """Prove the image: labelled right, qemu inside, and it runs. The labels
        come first, since a mislabelled image would not even start for the target
        platform. What could not be looked at (a dry run) is not judged."""
        config = self.look_at(image)
        if config is None:
            self.run_inside(image, proof.PROBES)  # the plan shows the run
            return
        proof.check_labels(image.arch, config)
        proof.check_qemu_inside(self.qemu_inside(image, qemu_sha256, config, work))
        machine = self.run_inside(image, proof.probes_for(config))
        if machine is not None:
            proof.check_machine(image.arch, machine)

    def look_at(self, image: Image) -> proof.ImageConfig | None:
        """The image's config, labels and layer folders: one native call (None: not asked)."""
        out = self.runner.ask(*self.shapes.inspect_cmd(image.name), label=image.label)
        return None if out is None else proof.ImageConfig.from_inspect(out)

    def qemu_inside(self, image: Image, wanted: str, config: proof.ImageConfig, work: Workspace) -> proof.QemuSeen:
        """The SHA256 of what the image has at each qemu path, read natively."""
        if config.layer_dirs:
            found = tuple(
                (path, files.sha256_or_none(proof.find_in_layers(config.layer_dirs, path))) for path in image.qemu_paths
            )
            return proof.QemuSeen(wanted, found)
        # Where the layers are not on this host (a remote daemon, another
        # storage driver), copy the files out of a container that never starts.
        run = self.runner.run
        container = run(*self.shapes.create_cmd(image.platform, image.name, "true"), label=image.label)
        container = container.strip() or "CONTAINER"
        copies: list[tuple[str, str | None]] = []
        try:
            for path in image.qemu_paths:
                copied = work.scratch / f"{image.label}-{Path(path).name}"
                try:
                    run(*self.shapes.copy_out_cmd(container, path, copied), label=image.label)
                except CommandFailed:
                    copies.append((path, None))
                else:
                    copies.append((path, files.sha256_or_none(copied)))
        finally:
            with contextlib.suppress(CommandFailed):
                run(*self.shapes.remove_container_cmd(container), label=image.label)
        return proof.QemuSeen(wanted, tuple(copies))

    def run_inside(self, image: Image, probes: tuple[proof.Probe, ...]) -> proof.Machine | None:
        """One emulated run: the first probe whose program the image has (None: not run)."""
        for probe in probes:
            # Named, so that a run that outlives --proof-timeout can be removed:
            # its program, as PID 1, ignores the SIGTERM the client passes on,
            # and the client waits for it.
            container = f"xcompile-proof-{uuid.uuid4().hex[:12]}"
            argv = self.shapes.run_cmd(
                image.platform, image.name, *probe.args, entrypoint=probe.entrypoint, name=container
            )
            remove = functools.partial(self._remove_container, container, image.label)
            try:
                out = self.runner.ask(*argv, label=image.label, timeout=self.timeout, on_timeout=remove)
            except CommandFailed as err:
                failure = engine.classify(err, probe.entrypoint)
                if failure.kind == "missing-program":
                    continue
                raise proof.run_failed(image.arch, failure, err, self.shapes.program) from None
            if out is None:
                return None
            machine = proof.read_probe(probe, out)
            if machine.python is None and machine.uname is not None:
                self.say("no python3 in the image; checked with uname only", image.label)
            return machine
        raise proof.nothing_to_run()

    def _remove_container(self, container: str, label: str) -> None:
        try:
            self.runner.run(
                *self.shapes.remove_container_cmd(container, force=True), label=label, timeout=REMOVE_TIMEOUT
            )
        except XcompileError as err:  # the image has failed already; this is worth a line, no more
            self.say(f"its container {container} is left: {err}", label)

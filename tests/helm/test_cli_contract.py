"""Every command the chart runs is one the `switchboard` CLI accepts."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from chart_render import SCENARIOS, scenario_manifests

from control_plane.bootstrap import BootstrapSettings
from control_plane.cli import _parser
from control_plane.envoy_process import Drain, envoy_argv

SUBCOMMANDS = {"up", "control-plane", "ext-proc", "envoy", "validate", "render"}


def _switchboard_args(manifests: list[dict[str, Any]]) -> list[list[str]]:
    found = []
    for manifest in manifests:
        pod = manifest.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            args = [str(a) for a in container.get("args", [])]
            if args and args[0] in SUBCOMMANDS:
                found.append(args)
    return found


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_chart_runs_only_commands_the_cli_accepts(scenario: str) -> None:
    commands = _switchboard_args(scenario_manifests(scenario))
    assert {args[0] for args in commands} == {"control-plane", "ext-proc", "envoy"}
    for args in commands:
        resolved = [a.replace("$(POD_NAME)", "pod-0") for a in args]
        _parser().parse_args(resolved)  # exits (SystemExit) on an unknown flag


SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"


def _exec_start(unit: Path) -> list[str]:
    text = unit.read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


@pytest.mark.parametrize("unit", sorted(SYSTEMD.glob("*.service")), ids=lambda p: p.stem)
def test_the_systemd_units_run_only_commands_the_cli_accepts(unit: Path) -> None:
    argv = _exec_start(unit)
    assert argv[0] == "/opt/switchboard/bin/switchboard"
    assert argv[1] in SUBCOMMANDS
    _parser().parse_args(argv[1:])


def test_envoy_is_started_with_the_drain_the_command_was_given() -> None:
    args = _parser().parse_args(["envoy", "--xds-address", "cp:18000", "--ext-proc-socket-dir",
                                 "/s", "--drain-time-s", "90"])
    settings = BootstrapSettings(node_id="n", xds_host="cp", xds_port=18000,
                                 ext_proc_sockets=(), admin_port=9901)
    argv = envoy_argv("envoy", Path("/tmp/b.yaml"), settings, "warn",
                      Drain(args.drain_time_s, args.drain_strategy))
    assert argv[argv.index("--drain-time-s") + 1] == "90"
    assert argv[argv.index("--drain-strategy") + 1] == "immediate"
    with pytest.raises(SystemExit):
        _parser().parse_args(["envoy", "--xds-address", "cp:1", "--ext-proc-socket-dir", "/s",
                              "--drain-time-s", "-1"])

"""Every command the chart runs is one the `switchboard` CLI accepts."""

from __future__ import annotations

from typing import Any

import pytest
from chart_render import SCENARIOS, scenario_manifests

from control_plane.cli import _parser

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

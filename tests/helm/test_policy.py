"""The policy the chart renders is accepted by the control plane's own loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart_render import CHART, find, scenario_manifests, scenario_values

from control_plane.cli import main
from control_plane.compiler import GatewaySettings, compile_policy
from control_plane.service import load_for_deployment


def _policy_configmap(scenario: str) -> dict[str, Any]:
    (configmap,) = [
        d
        for d in find(scenario_manifests(scenario), "ConfigMap")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "policy"
    ]
    return configmap


@pytest.mark.parametrize("scenario", ["default", "replicated"])
def test_rendered_configmap_carries_the_policy_files_verbatim(scenario: str) -> None:
    files = scenario_values(scenario).get("policy", {}).get("files")
    data = _policy_configmap(scenario)["data"]
    demo = (CHART / "files" / "demo-policy.yaml").read_text()
    assert data == (files or {"demo-policy.yaml": demo})
    assert all(name.endswith((".yaml", ".yml")) for name in data)


def _control_plane_flag(scenario: str, flag: str) -> list[str]:
    (cp,) = find(scenario_manifests(scenario), "Deployment", "switchboard-control-plane")
    args = cp["spec"]["template"]["spec"]["containers"][0]["args"]
    return [a for a in args if a.startswith(f"{flag}=")]


@pytest.mark.parametrize("scenario", ["default", "replicated"])
def test_rendered_policy_passes_switchboard_validate(
    scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `switchboard validate` on the rendered files, with the store flag the chart gives the
    # control plane: the policy is accepted exactly as the control plane will serve it.
    for name, text in _policy_configmap(scenario)["data"].items():
        (tmp_path / name).write_text(text)
    with pytest.raises(SystemExit) as validate:
        main(["validate", *_control_plane_flag(scenario, "--state-redis-url"), str(tmp_path)])
    assert validate.value.code == 0, capsys.readouterr().err
    assert f"{tmp_path}: valid" in capsys.readouterr().out


@pytest.mark.parametrize(("scenario", "backend"), [("default", "sqlite"), ("replicated", "redis")])
def test_rendered_policy_keeps_budgets_where_the_chart_says(scenario: str, backend: str) -> None:
    (flag,) = _control_plane_flag(scenario, "--state-redis-url") or ["="]
    url = flag.partition("=")[2] or None
    policy = load_for_deployment(_policy_configmap(scenario)["data"], url)
    compile_policy(policy, GatewaySettings())
    assert policy.state.backend == backend
    if backend == "redis":
        assert policy.state.url == "env:SWITCHBOARD_REDIS_URL"  # the variable the chart sets


def test_existing_configmap_is_not_rendered() -> None:
    names = {d["metadata"]["name"] for d in find(scenario_manifests("gitops"), "ConfigMap")}
    assert names == set()

"""The policy the chart renders is accepted by the control plane's own loader."""

from __future__ import annotations

from typing import Any

import pytest
from chart_render import CHART, find, scenario_manifests, scenario_values

from control_plane.compiler import GatewaySettings, compile_policy
from control_plane.policy import load_documents


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


@pytest.mark.parametrize("scenario", ["default", "replicated"])
def test_rendered_policy_passes_switchboard_validate(scenario: str) -> None:
    # What `switchboard validate` runs: load, validate, and compile.
    compile_policy(load_documents(_policy_configmap(scenario)["data"]), GatewaySettings())


def test_existing_configmap_is_not_rendered() -> None:
    names = {d["metadata"]["name"] for d in find(scenario_manifests("gitops"), "ConfigMap")}
    assert names == set()

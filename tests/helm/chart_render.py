"""Render the chart offline with the Helm SDK (no cluster, no helm binary) for the chart tests."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "switchboard"
GOLDEN = Path(__file__).parent / "golden"
RELEASE = "switchboard"
NAMESPACE = "gateway"
SCENARIOS = sorted(p.stem.removesuffix("-values") for p in (CHART / "ci").glob("*-values.yaml"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def scenario_values(scenario: str) -> dict[str, Any]:
    values = yaml.safe_load((CHART / "ci" / f"{scenario}-values.yaml").read_text())
    return values or {}


@functools.cache
def _chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text, exactly as `helm template` would produce it."""
    return _chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(rendered[path]) if d)
    return docs


@functools.cache
def _scenario_manifests(scenario: str) -> tuple[dict[str, Any], ...]:
    return tuple(manifests(render(scenario_values(scenario))))


def scenario_manifests(scenario: str) -> list[dict[str, Any]]:
    return list(_scenario_manifests(scenario))


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def pod_containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]

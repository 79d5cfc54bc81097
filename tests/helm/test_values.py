"""values.yaml, values.schema.json and README.md stay in step; the chart refuses unsafe values."""

from __future__ import annotations

import json
from typing import Any

import helm_python as helm
import pytest
from chart_render import CHART, UPDATE, render
from values_doc import documented_values, render_readme


def _schema_leaves(schema: dict[str, Any], prefix: str = "") -> set[str]:
    leaves: set[str] = set()
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if "description" in sub:
            leaves.add(path)
        else:
            leaves |= _schema_leaves(sub, f"{path}.")
    return leaves


def test_every_value_is_documented() -> None:
    undocumented = [d.path for d in documented_values(CHART / "values.yaml") if not d.description]
    assert undocumented == []


def test_schema_covers_exactly_the_documented_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    documented = {d.path for d in documented_values(CHART / "values.yaml")}
    assert _schema_leaves(schema) == documented


def _schema_descriptions(schema: dict[str, Any], prefix: str = "") -> dict[str, str]:
    found: dict[str, str] = {}
    for key, sub in schema.get("properties", {}).items():
        if "description" in sub:
            found[f"{prefix}{key}"] = sub["description"]
        else:
            found |= _schema_descriptions(sub, f"{prefix}{key}.")
    return found


def test_schema_descriptions_are_the_values_documentation() -> None:
    # Editors show the schema's text; it must say what values.yaml and README.md say.
    schema = json.loads((CHART / "values.schema.json").read_text())
    documented = {d.path: d.description for d in documented_values(CHART / "values.yaml")}
    assert _schema_descriptions(schema) == documented


def test_readme_is_generated_from_values() -> None:
    readme = CHART / "README.md"
    expected = render_readme(CHART)
    if UPDATE:
        readme.write_text(expected)
    assert readme.read_text() == expected, "README.md is stale: UPDATE_GOLDEN=1 pytest tests/helm"


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"gateway": {"service": {"type": "ExternalName"}}}, "/gateway/service/type"),
        ({"gateway": {"extProc": {"workers": 0}}}, "/gateway/extProc/workers"),
        ({"gateway": {"replicaCount": 2}}, "/gateway"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"policy": {"files": {"policy.json": "{}"}}}, "invalid propertyName .policy.json."),
        ({"providerSecrets": {"names": ["Bad_Name"]}}, "/providerSecrets/names/0"),
        ({"redis": {"externalUrl": "http://redis:6379"}}, "/redis/externalUrl"),
        ({"gateway": {"envoy": {"readinessProbe": {"periodSecond": 5}}}}, "/gateway/envoy"),
    ],
)
def test_schema_rejects(values: dict[str, Any], where: str) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError, match=where):
        chart.validate_schema(values)


def test_schema_accepts_the_defaults() -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema({})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"gateway": {"replicas": 2}}, "several gateway pods need shared budgets"),
        ({"gateway": {"autoscaling": {"enabled": True}}}, "several gateway pods need shared"),
        (
            {"gateway": {"envoy": {"drainSeconds": 60}, "terminationGracePeriodSeconds": 60}},
            "must exceed gateway.envoy.drainSeconds",
        ),
        (
            {
                "policy": {
                    "files": {"p.yaml": "providers: {o: {kind: openai, api_key: secret:keys/o}}"}
                }
            },
            'refers to Secret "keys"',
        ),
        (
            {
                "redis": {"enabled": True},
                "policy": {"files": {"state.yaml": "state: {backend: sqlite}"}},
            },
            "declares state.backend sqlite, but Redis is configured",
        ),
    ],
)
def test_render_refuses_unsafe_combinations(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


def test_per_pod_budgets_can_be_accepted_explicitly() -> None:
    rendered = render({"gateway": {"replicas": 2, "allowPerPodBudgets": True}})
    assert (
        "budgets and rate limits are enforced per pod"
        in rendered["switchboard/templates/NOTES.txt"]
    )


def _notes(values: dict[str, Any]) -> str:
    return " ".join(render(values)["switchboard/templates/NOTES.txt"].split())


def test_notes_say_what_sqlite_on_a_pod_means() -> None:
    notes = _notes({})
    assert "no Redis is configured" in notes
    assert "start again from zero whenever a gateway pod is replaced" in notes
    assert "/usage and /budgets answer 409" in notes
    assert "enforced per pod" not in notes  # one pod: nothing is split


def test_notes_say_where_shared_budgets_live() -> None:
    notes = _notes({"redis": {"existingSecret": {"name": "llm-redis"}}})
    assert "shared by every gateway pod in Redis (URL from Secret llm-redis)" in notes
    assert "a policy declaring SQLite is refused" in notes
    assert "no persistence" in _notes({"redis": {"enabled": True}})
    assert "no persistence" not in _notes(
        {"redis": {"enabled": True, "persistence": {"enabled": True}}})

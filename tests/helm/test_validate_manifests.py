"""Every rendered manifest validates against the Kubernetes OpenAPI schemas (strict: unknown
fields are errors), for the oldest supported Kubernetes and the newest the validator knows.

ServiceMonitor and HTTPRoute are CRDs with no schema in kubernetes-validate; they are checked
against the hand-written subsets in crd_schemas/, which cover every field the chart renders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from chart_render import scenario_manifests

CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-v1.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute-v1.json",
}
KUBE_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


def _validate(doc: dict[str, Any], kube: str) -> None:
    crd = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if crd is None:
        kubernetes_validate.validate(doc, kube, strict=True)
        return
    schema = json.loads((Path(__file__).parent / "crd_schemas" / crd).read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_every_manifest_is_valid(scenario: str, kube: str) -> None:
    docs = scenario_manifests(scenario)
    assert docs
    for doc in docs:
        try:
            _validate(doc, kube)
        except jsonschema.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {kube}: {exc.message}")


def test_validation_catches_a_broken_manifest() -> None:
    deployment = next(d for d in scenario_manifests("default") if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["periodSecond"] = 1
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken, KUBE_VERSIONS[0])


@pytest.mark.parametrize("kind", ["ServiceMonitor", "HTTPRoute"])
def test_crd_subset_schemas_reject_unknown_fields(kind: str) -> None:
    docs = scenario_manifests("replicated") + scenario_manifests("httproute")
    doc = json.loads(json.dumps(next(d for d in docs if d["kind"] == kind)))
    doc["spec"]["unknownField"] = True
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc, KUBE_VERSIONS[0])

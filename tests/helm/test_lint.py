"""`helm lint --strict` through the Helm SDK, for every ci/ scenario."""

from __future__ import annotations

import helm_python as helm
from chart_render import CHART, NAMESPACE, scenario_values

WARNING = 2


def test_lint_strict(scenario: str) -> None:
    report = helm.lint(
        CHART,
        scenario_values(scenario),
        strict=True,
        namespace=NAMESPACE,
        kube_version="v1.29.0",
    )
    findings = [m for m in report["messages"] if m["severity"] >= WARNING]
    assert findings == [], findings
    assert report["errors"] == []


def test_lint_reports_a_broken_value() -> None:
    report = helm.lint(CHART, {"gateway": {"service": {"type": "Ingress"}}}, strict=True)
    assert any("/gateway/service/type" in e for e in report["errors"]), report


def test_sdk_bundles_helm() -> None:
    # The tests need no helm binary: the SDK wheel carries Helm as a shared library.
    assert helm.helm_sdk_version().startswith("v4.")
    assert helm.library_path.exists()

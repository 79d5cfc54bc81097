"""Golden renders: the default and the replicated values, byte for byte.

Refresh after an intended change with `UPDATE_GOLDEN=1 pytest tests/helm` and review the diff.
"""

from __future__ import annotations

import pytest
from chart_render import GOLDEN, UPDATE, render, scenario_values

GOLDEN_SCENARIOS = ["default", "replicated"]


def _as_template_output(rendered: dict[str, str]) -> str:
    parts = []
    for path in sorted(rendered):
        text = rendered[path].strip()
        if text and not path.endswith("NOTES.txt"):
            parts.append(f"---\n# Source: {path}\n{text.removeprefix('---').lstrip()}\n")
    return "".join(parts)


@pytest.mark.parametrize("scenario", GOLDEN_SCENARIOS)
def test_golden_render(scenario: str) -> None:
    actual = _as_template_output(render(scenario_values(scenario)))
    golden = GOLDEN / f"{scenario}.yaml"
    if UPDATE:
        golden.write_text(actual)
    assert golden.exists(), f"missing {golden}; run UPDATE_GOLDEN=1 pytest tests/helm"
    assert actual == golden.read_text(), (
        f"{scenario} render changed; review and run UPDATE_GOLDEN=1 pytest tests/helm"
    )

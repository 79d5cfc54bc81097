from __future__ import annotations

import pytest
from chart_render import SCENARIOS


@pytest.fixture(params=SCENARIOS)
def scenario(request: pytest.FixtureRequest) -> str:
    """Each ci/*-values.yaml scenario of the chart."""
    return str(request.param)

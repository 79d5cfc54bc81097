from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from ext_proc.metering.usage import Outcome, TokenUsage, UsageRecord


def test_usage_adds_up_and_keeps_estimated() -> None:
    a = TokenUsage(input=10, output=5, cached_read=4, cache_creation=1, reasoning=2)
    b = TokenUsage(input=1, output=1, estimated=True)
    total = a + b
    assert total == TokenUsage(11, 6, 4, 1, 2, estimated=True)
    assert (total.uncached_input, total.total) == (6, 17)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input": -1},
        {"input": 5, "cached_read": 4, "cache_creation": 2},
        {"output": 1, "reasoning": 2},
    ],
)
def test_usage_rejects_inconsistent_counts(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        TokenUsage(**kwargs)


def test_record_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone"):
        UsageRecord(
            datetime(2025, 1, 1),
            "r",
            "t",
            "k",
            "m",
            "p",
            "pm",
            TokenUsage(),
            Decimal(0),
            200,
            Outcome.OK,
            0.1,
        )

"""Usage records and their aggregation, run against both ledgers."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from ext_proc.metering.usage import Outcome
from ext_proc.state.ledger import Ledger
from ext_proc.state.model import GroupBy
from tests.unit.ext_proc.state.conftest import FakeClock
from tests.unit.ext_proc.state.conftest import usage_record as record


async def test_records_are_aggregated(ledger: Ledger, clock: FakeClock) -> None:
    old = record(clock, "old", cost="5")
    await ledger.record_usage(old)
    clock.advance(timedelta(hours=30))
    since = clock() - timedelta(hours=24)
    await ledger.record_usage(record(clock, "r1", outcome=Outcome.UPSTREAM_ERROR, cost="0"))
    await ledger.record_usage(record(clock, "r1", attempt=1, provider="bedrock"))
    await ledger.record_usage(record(clock, "r2", cost="0.000000001", estimated=True))
    await ledger.record_usage(
        record(clock, "r3", team="ads", model="llama", cost=None, outcome=Outcome.CLIENT_DISCONNECT)
    )

    by_team = await ledger.usage_summary("team", since)
    assert [r.group for r in by_team] == ["search", "ads"]
    search, ads = by_team
    assert search.attempts == 3
    assert search.cost_usd == Decimal("0.010000001")
    assert (search.input_tokens, search.output_tokens) == (300, 60)
    assert (search.cached_read_tokens, search.cache_creation_tokens) == (120, 30)
    assert search.reasoning_tokens == 15
    assert (search.failed_attempts, search.estimated_attempts) == (1, 1)
    assert (ads.unpriced_attempts, ads.cost_usd, ads.failed_attempts) == (1, Decimal(0), 1)


@pytest.mark.parametrize(
    ("by", "groups"),
    [
        ("model", {"smart", "llama"}),
        ("provider", {"anthropic", "bedrock"}),
        ("provider_model", {"anthropic-model", "bedrock-model"}),
        ("key", {"sha256:search", "sha256:ads"}),
    ],
)
async def test_group_by(ledger: Ledger, clock: FakeClock, by: GroupBy, groups: set[str]) -> None:
    await ledger.record_usage(record(clock, "a"))
    await ledger.record_usage(record(clock, "b", provider="bedrock", team="ads", model="llama"))
    rows = await ledger.usage_summary(by, clock() - timedelta(minutes=1))
    assert {r.group for r in rows} == groups


async def test_rewriting_a_record_does_not_double_count(ledger: Ledger, clock: FakeClock) -> None:
    await ledger.record_usage(record(clock, "a", cost="1"))
    await ledger.record_usage(record(clock, "a", cost="2"))
    (row,) = await ledger.usage_summary("team", clock() - timedelta(minutes=1))
    assert (row.attempts, row.cost_usd) == (1, Decimal(2))

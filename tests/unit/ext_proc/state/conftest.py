"""Fixtures for ledger tests: an injectable clock and both ledger implementations."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ext_proc.metering.usage import Outcome, TokenUsage, UsageRecord
from ext_proc.state.ledger import Ledger
from ext_proc.state.redis_ledger import RedisLedger
from ext_proc.state.sqlite_ledger import SqliteLedger
from tests.support.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 14, 12, 0, 30, tzinfo=UTC))


@pytest.fixture(params=["sqlite", "redis"])
async def ledger(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Ledger]:
    """Each test runs against both stores, with the same clock."""
    built: Ledger
    if request.param == "sqlite":
        built = await SqliteLedger.open(tmp_path / "ledger.db", clock=clock)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        built = RedisLedger.from_url(
            server.url, clock=clock, prefix=f"test:{{{uuid.uuid4().hex}}}:"
        )
    try:
        yield built
    finally:
        await built.close()


def usage_record(
    clock: FakeClock,
    rid: str,
    *,
    team: str = "search",
    model: str = "smart",
    provider: str = "anthropic",
    cost: str | None = "0.01",
    outcome: Outcome = Outcome.OK,
    attempt: int = 0,
    estimated: bool = False,
) -> UsageRecord:
    return UsageRecord(
        time=clock(),
        request_id=rid,
        team=team,
        key_id=f"sha256:{team}",
        requested_model=model,
        provider=provider,
        provider_model=f"{provider}-model",
        usage=TokenUsage(
            input=100,
            output=20,
            cached_read=40,
            cache_creation=10,
            reasoning=5,
            estimated=estimated,
        ),
        cost_usd=None if cost is None else Decimal(cost),
        status=200 if outcome == "ok" else 503,
        outcome=outcome,
        latency_s=1.5,
        ttft_s=0.2,
        attempt=attempt,
    )

"""Requests and tokens per minute, run against both ledgers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ext_proc.state.ledger import Ledger
from ext_proc.state.model import LimitKind, RateLimitRule, ReservationRequest, scope_key
from tests.unit.ext_proc.state.conftest import FakeClock

TEAM_RPM = RateLimitRule(scope_key(team="search"), requests_per_minute=3)
KEY_TPM = RateLimitRule(scope_key(key="sha256:k"), tokens_per_minute=1000)


def req(rid: str, tokens: int, *limits: RateLimitRule) -> ReservationRequest:
    return ReservationRequest(rid, Decimal(0), tokens, rate_limits=limits)


async def test_requests_per_minute_fixed_window(ledger: Ledger, clock: FakeClock) -> None:
    for i in range(3):
        assert (await ledger.reserve(req(f"a{i}", 1, TEAM_RPM))).admitted
    refused = await ledger.reserve(req("a3", 1, TEAM_RPM))
    assert not refused.admitted
    (denial,) = refused.denials
    assert denial.kind is LimitKind.REQUESTS_PER_MINUTE
    assert denial.resets_at == datetime(2025, 3, 14, 12, 1, tzinfo=UTC)
    assert refused.retry_after_seconds(clock()) == 30
    assert "3 requests per minute" in refused.message()
    # Releasing does not give the request back: it was made.
    await ledger.release("a0")
    assert not (await ledger.reserve(req("a4", 1, TEAM_RPM))).admitted
    clock.advance(timedelta(seconds=30))
    assert (await ledger.reserve(req("a5", 1, TEAM_RPM))).admitted


async def test_tokens_per_minute_reserved_then_corrected(ledger: Ledger) -> None:
    assert (await ledger.reserve(req("a", 800, KEY_TPM))).admitted
    assert not (await ledger.reserve(req("b", 300, KEY_TPM))).admitted
    # The request used far fewer tokens than its worst case: the difference comes back.
    await ledger.settle("a", cost_usd=None, tokens=200)
    assert (await ledger.reserve(req("b2", 800, KEY_TPM))).admitted
    await ledger.release("b2")
    assert (await ledger.reserve(req("c", 800, KEY_TPM))).admitted


async def test_team_and_key_limits_together(ledger: Ledger) -> None:
    both = (TEAM_RPM, KEY_TPM)
    assert (await ledger.reserve(req("a", 900, *both))).admitted
    refused = await ledger.reserve(req("b", 200, *both))
    assert [d.kind for d in refused.denials] == [LimitKind.TOKENS_PER_MINUTE]
    # The refused request did not consume a request slot either (all or nothing).
    assert (await ledger.reserve(req("c", 10, *both))).admitted
    assert (await ledger.reserve(req("d", 10, *both))).admitted
    assert not (await ledger.reserve(req("e", 10, *both))).admitted

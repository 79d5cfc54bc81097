"""Budget periods end on the calendar, in the budget's time zone, through the real Envoy,
workers and SQLite ledger, with the workers' wall clock moved across a month's end.

The workers are separate processes, so their clock is moved from outside, with libfaketime
preloaded into them only (tests/support/faketime.py): the product keeps no test hook, and
Envoy and the control plane run on the real clock. Only the wall clock moves, which is all
budget windows read; the first move happens before any request, so every record carries a
faked time.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest

from control_plane.keys import create_key
from ext_proc.state.sqlite_ledger import SqliteLedger
from tests.support.components import Components, wait_until
from tests.support.faketime import FakeClock
from tests.support.metering import query, usage_record, wait_released

pytestmark = pytest.mark.integration

KEY, KEY_HASH = create_key("search")
POLICY = f"""
providers:
  demo: {{kind: mock}}
models:
  mock: {{targets: [{{provider: demo}}]}}
prices:
  demo/mock: {{input_per_mtok: 1000, output_per_mtok: 1000}}
teams:
  search: {{keys: [{KEY_HASH}]}}
budgets:
  paris-monthly: {{limit_usd: 0.1, period: month, timezone: Europe/Paris}}
"""
LIMIT = Decimal("0.1")
BODY = orjson.dumps({"model": "mock", "max_tokens": 10,
                     "messages": [{"role": "user", "content": "Hello there"}]})
PRICE = Decimal(1000) / 10**6  # USD per token, input and output alike
# Admission reserves the prompt estimated from the body size (1 token per 3 bytes) plus
# max_tokens; the mock's answer then costs 2 prompt + 10 completion tokens.
RESERVED = (math.ceil(len(BODY) / 3) + 10) * PRICE
COST = 12 * PRICE
# Served one after another, each settled before the next: the k-th (from 0) is admitted
# while k answers' cost plus its own reservation fit in the limit.
SERVED = sum(1 for k in range(100) if k * COST + RESERVED <= LIMIT)
PARIS_FEBRUARY = datetime(2030, 1, 31, 23, 0, tzinfo=UTC)  # 2030-02-01 00:00 in Paris


@dataclass
class Running:
    parts: Components
    clock: FakeClock

    def post(self) -> httpx.Response:
        return httpx.post(f"{self.parts.url}/v1/chat/completions", content=BODY, timeout=10,
                          headers={"authorization": f"Bearer {KEY}",
                                   "content-type": "application/json"})

    def spend_all(self) -> tuple[list[str], httpx.Response]:
        """Requests one after another until one is refused: the served ones' request ids
        (each charged and released before the next) and the refusal."""
        served: list[str] = []
        for _ in range(SERVED + 1):
            response = self.post()
            if response.status_code != 200:
                return served, response
            served.append(response.headers["x-request-id"])
            usage_record(self.parts.ledger_path, served[-1])
            wait_released(self.parts.ledger_path)
        raise AssertionError(f"{len(served)} requests served and none refused")

    def assert_refused_until(self, resets: datetime, spent: Decimal) -> None:
        before = self.clock.now()
        response = self.post()
        after = self.clock.now()
        assert response.status_code == 429
        assert response.json()["error"]["message"] == (
            f"Budget 'paris-monthly' (org) of ${LIMIT} is exhausted (${spent} used); "
            f"it resets at {resets.isoformat()}.")
        retry_after = int(response.headers["retry-after"])
        assert math.ceil((resets - after).total_seconds()) <= retry_after <= math.ceil(
            (resets - before).total_seconds())


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    parts = Components(tmp_path, policy)
    clock = FakeClock(tmp_path)
    # Created here, so no faked worker has to wait (time.sleep) for another creating it.
    parts.ledger_path.parent.mkdir()
    asyncio.run(_create_ledger(parts.ledger_path))
    try:
        parts.start_all(ext_proc_env=clock.env)
        wait_until(lambda: _answers(parts.url), 10)
        yield Running(parts, clock)
    finally:
        parts.stop()


async def _create_ledger(path: Path) -> None:
    ledger = await SqliteLedger.open(str(path))
    await ledger.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/models", timeout=1).status_code == 401
    except httpx.HTTPError:
        return False


def test_a_spent_budget_serves_again_once_its_calendar_period_is_over(
        running: Running) -> None:
    assert SERVED >= 2
    # 23:50 on 31 January in Paris: the month's budget is spent.
    running.clock.set(datetime(2030, 1, 31, 22, 50, tzinfo=UTC))
    january, _ = running.spend_all()
    assert len(january) == SERVED
    spent = Decimal(len(january) * 12000) / 10**6  # micro-USD, as the ledger counts
    paris_midnight = datetime.fromisoformat("2030-02-01T00:00:00+01:00")
    assert paris_midnight == PARIS_FEBRUARY
    running.assert_refused_until(paris_midnight, spent)

    # 23:59: later, still January in Paris, still refused.
    running.clock.set(datetime(2030, 1, 31, 22, 59, tzinfo=UTC))
    running.assert_refused_until(paris_midnight, spent)

    # 00:01 on 1 February in Paris (still 31 January in UTC): a new period, a whole budget.
    running.clock.set(datetime(2030, 1, 31, 23, 1, tzinfo=UTC))
    february, _ = running.spend_all()
    assert len(february) == SERVED
    running.assert_refused_until(datetime.fromisoformat("2030-03-01T00:00:00+01:00"), spent)

    # Every record carries the faked time of its period.
    times = {row["request_id"]: row["time_ms"] for row in query(
        running.parts.ledger_path, "SELECT request_id, time_ms FROM usage")}
    first, last = (int(datetime(2030, 1, 31, 22, 50, tzinfo=UTC).timestamp() * 1000),
                   int(PARIS_FEBRUARY.timestamp() * 1000))
    assert all(first <= times[r] < last for r in january)
    assert all(last < times[r] < last + 600_000 for r in february)

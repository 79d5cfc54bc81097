"""A budget kept in Redis holds under 200 concurrent requests, on one gateway and shared by
two (separate Envoys and worker processes)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from control_plane.keys import create_key
from tests.support.gateway import Gateway, start_gateway
from tests.support.metering import burst, poll
from tests.support.redis_server import RedisServer, start_redis_server

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
  search: {{keys: [{KEY_HASH}], budget: {{limit_usd: 0.1, period: day}}}}
state: {{backend: redis, url: env:TEST_REDIS_URL}}
"""


@pytest.fixture(params=[1, 2], ids=["one-gateway", "two-gateways"])
def redis_gateways(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[RedisServer, list[Gateway]]]:
    """A fresh Redis (so no earlier spend counts) and that many gateways sharing it."""
    started: list[Gateway] = []
    with start_redis_server(tmp_path_factory.mktemp("redis")) as server:
        try:
            for index in range(request.param):
                started.append(start_gateway(POLICY, Path(tmp_path_factory.mktemp(f"gw{index}")),
                                             env={"TEST_REDIS_URL": server.url}))
            yield server, started
        finally:
            for gateway in started:
                gateway.stop()


def test_200_concurrent_requests_never_exceed_the_budget(
        redis_gateways: tuple[RedisServer, list[Gateway]]) -> None:
    redis_server, gateways = redis_gateways
    statuses = burst([g.url for g in gateways], KEY, {
        "model": "mock", "max_tokens": 20,
        "messages": [{"role": "user", "content": "Hello there"}]}, 200)
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)

    def settled() -> bool:  # usage writes and access-log releases happen in the background
        entries = client.xrange("switchboard:{ledger}:usage")
        counters = [client.hgetall(k) for k in client.scan_iter("switchboard:{ledger}:c:b|*")]
        return len(entries) == statuses.count(200) and bool(counters) and all(
            int(c.get("r", 0)) == 0 for c in counters)

    poll(lambda: settled() or None, "a record per request served and every release")
    entries = client.xrange("switchboard:{ledger}:usage")
    spent = sum(Decimal(fields["cost"]) for _, fields in entries) / 10**9
    assert spent <= Decimal("0.1")

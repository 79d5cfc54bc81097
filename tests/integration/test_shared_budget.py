"""One budget shared through Redis by two gateways (separate Envoys and worker processes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis

from control_plane.keys import create_key
from tests.support.gateway import Gateway, start_gateway
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


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with start_redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory,
             redis_server: RedisServer) -> Iterator[list[Gateway]]:
    started: list[Gateway] = []
    try:
        for name in ("a", "b"):
            started.append(start_gateway(POLICY, Path(tmp_path_factory.mktemp(name)),
                                         env={"TEST_REDIS_URL": redis_server.url}))
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def test_200_concurrent_requests_across_two_gateways_never_exceed_the_budget(
        gateways: list[Gateway], redis_server: RedisServer) -> None:
    async def one(client: httpx.AsyncClient, gateway: Gateway) -> int:
        response = await client.post(
            f"{gateway.url}/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
            json={"model": "mock", "max_tokens": 20,
                  "messages": [{"role": "user", "content": "Hello there"}]})
        return response.status_code

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=30,
                                     limits=httpx.Limits(max_connections=200)) as client:
            return await asyncio.gather(*(one(client, gateways[i % 2]) for i in range(200)))

    statuses = asyncio.run(burst())
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)

    def settled() -> bool:  # usage writes and access-log releases happen in the background
        entries = client.xrange("switchboard:{ledger}:usage")
        counters = [client.hgetall(k) for k in client.scan_iter("switchboard:{ledger}:c:b|*")]
        return len(entries) == statuses.count(200) and bool(counters) and all(
            int(c.get("r", 0)) == 0 for c in counters)

    deadline = time.monotonic() + 10
    while not settled():
        assert time.monotonic() < deadline, "records or releases missing"
        time.sleep(0.1)
    entries = client.xrange("switchboard:{ledger}:usage")
    spent = sum(Decimal(fields["cost"]) for _, fields in entries) / 10**9
    assert spent <= Decimal("0.1")

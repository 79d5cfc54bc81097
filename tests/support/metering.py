"""Reading what the gateway metered: usage records and reservations in the SQLite ledger, and
bursts of concurrent requests for budget tests.

Usage records and reservation releases are written in the background (after the reply, and
after Envoy's batched access log), so the readers here poll until what they wait for is there.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
WAIT_S = 10.0


def poll(read: Callable[[], T | None], what: str, timeout_s: float = WAIT_S) -> T:
    """The first non-None value of read(); an AssertionError naming `what` past the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def query(ledger: Path, sql: str, *args: object) -> list[dict[str, Any]]:
    """Rows of a read-only query; [] while no worker has created the ledger yet."""
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(sql, args)]
    except sqlite3.OperationalError:
        return []  # a worker creates the file and its tables with its first write


def usage_record(ledger: Path, request_id: str, timeout_s: float = WAIT_S) -> dict[str, Any]:
    """The usage row of a request's first attempt."""
    def read() -> dict[str, Any] | None:
        rows = query(ledger, "SELECT * FROM usage WHERE request_id = ? ORDER BY attempt",
                     request_id)
        return rows[0] if rows else None

    return poll(read, f"the usage record of {request_id}", timeout_s)


def wait_released(ledger: Path, timeout_s: float = WAIT_S) -> None:
    """Until no reservation is held: every finished request's has been released."""
    def read() -> bool | None:
        rows = query(ledger, "SELECT COUNT(*) AS held FROM reservations WHERE state = 'active'")
        return True if rows and rows[0]["held"] == 0 else None

    poll(read, "every reservation to be released", timeout_s)


def cost_of(row: Mapping[str, Any]) -> Decimal:
    return Decimal(row["cost_nanos"]) / Decimal(10**9)


def tokens_of(row: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    """(input, output, cached read, cache creation, reasoning) of a usage row."""
    return (row["input_tokens"], row["output_tokens"], row["cached_read"],
            row["cache_creation"], row["reasoning"])


def burst(urls: Sequence[str], key: str, body: Mapping[str, Any], count: int) -> list[int]:
    """`count` chat requests sent at once, spread round-robin over the gateways at `urls`;
    their statuses in order."""
    async def one(client: httpx.AsyncClient, url: str) -> int:
        response = await client.post(f"{url}/v1/chat/completions", json=body,
                                     headers={"authorization": f"Bearer {key}"})
        return response.status_code

    async def all_at_once() -> list[int]:
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            return await asyncio.gather(*(one(client, urls[i % len(urls)])
                                          for i in range(count)))

    return asyncio.run(all_at_once())

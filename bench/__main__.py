"""`python -m bench`: run a benchmark scenario and record its results in bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
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


# The commands whose module has `add_arguments(parser)` and `run(args)`, whose results are
# saved as results/NAME.json: name, module, help.
_MODULE_COMMANDS = (
    ("run", "bench.datapath", "the data path: plain Envoy vs Switchboard, with wrk"),
    ("metering", "bench.metering", "a worker's CPU per forwarded request's access-log entry"),
    ("filters", "bench.filters", "each Envoy filter's cost, amplified"),
    ("instructions", "bench.instructions",
     "Envoy's instructions per request, counted by callgrind"),
    ("lua", "bench.lua", "the lane's Lua translations in LuaJIT alone"),
)


def _module_command(module: ModuleType) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        print("saved", save(args.name, module.run(args)))

    return run


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

    for name, module_name, help_text in _MODULE_COMMANDS:
        module = importlib.import_module(module_name)
        command = commands.add_parser(name, help=help_text)
        module.add_arguments(command)
        command.set_defaults(run=_module_command(module))

    report = commands.add_parser("report", help="tables and plot for docs/benchmarks.md")
    report.add_argument("--output", default="docs/benchmarks-throughput.svg")
    report.set_defaults(run=_report)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()

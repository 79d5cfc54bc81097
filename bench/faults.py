"""What failover and component faults cost, measured on this machine (loopback only).

1. Added latency of one failover: requests whose first target fails fast (503, a reset, a
   refused connection) against requests that reach a healthy target at once, same gateway,
   rounds interleaved.
2. Failures while an ext_proc worker is SIGKILLed under steady load, and how long until the
   pool serves with it again.
3. Failures while the control plane is stopped and started again under steady load (control
   plane, workers and Envoy as separate processes, as the Helm chart runs them).

Load comes from `bench.load` in a separate process, open loop at a fixed rate.
python -m bench.faults [--rate 100] [--seconds 8] — about a minute in all.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from tests.fakes.fault_server import FaultServer
from tests.support.components import Components, wait_until
from tests.support.gateway import Gateway, start_gateway
from tests.support.ports import free_port
from tests.support.processes import worker_pids

POLICY = """
providers:
  primary: {{kind: openai, base_url: "{primary}/v1"}}
  backup: {{kind: openai, base_url: "{backup}/v1"}}
  gone: {{kind: openai, base_url: "http://127.0.0.1:{closed}/v1"}}
defaults:
  outlier_detection: {{enabled: false}}  # every request must pay its failover here
models:
  direct: {{targets: [{{provider: backup}}]}}
  pair: {{targets: [{{provider: primary}}, {{provider: backup}}]}}
  pair-no-back-off:
    targets: [{{provider: primary}}, {{provider: backup}}]
    retry_back_off: {{base_interval: 1ms, max_interval: 1ms}}
  refused: {{targets: [{{provider: gone}}, {{provider: backup}}]}}
"""
Result = tuple[float, float, int]


class Load:
    """bench.load running in its own process until `results()`."""

    def __init__(self, url: str, model: str, rate: float, seconds: float,
                 headers: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "bench.load", f"{url}/v1/chat/completions", model,
                   "--rate", str(rate), "--seconds", str(seconds)]
        for name, value in (headers or {}).items():
            command += ["--header", f"{name}:{value}"]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                         cwd=Path(__file__).parents[1])

    def results(self) -> list[Result]:
        out, _ = self._process.communicate(timeout=120)
        results: list[Result] = [(r[0], r[1], r[2]) for r in orjson.loads(out)["results"]]
        return results


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def failover_latency(gateway: Gateway, rounds: int, per_round: int) -> dict[str, list[float]]:
    cases = {
        "healthy target first": ("direct", {}),
        "first target answers 503": ("pair", {"x-fault-primary": "503"}),
        "first target answers 503, back-off 1 ms": ("pair-no-back-off",
                                                     {"x-fault-primary": "503"}),
        "first target resets": ("pair", {"x-fault-primary": "reset"}),
        "first target refuses the connection": ("refused", {}),
    }
    latencies: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (model, headers) in cases.items():
            # 20 requests/s: one at a time, so the latency is the request's own.
            results = Load(gateway.url, model, 20, per_round / 20, headers).results()
            assert all(status == 200 for _, _, status in results), (name, results)
            latencies[name] += [latency for _, latency, _ in results]
    return latencies


def kill_workers(gateway: Gateway, rate: float, seconds: float,
                 upstream_delay_s: float) -> tuple[list[Result], list[float]]:
    headers = {"x-fault-backup": f"slow:{upstream_delay_s}"} if upstream_delay_s else {}
    load = Load(gateway.url, "direct", rate, seconds, headers)
    restarts = []
    for kill in range(3):  # three kills, a quarter of the run apart
        time.sleep(seconds * 0.25)
        node = f"ext-proc-{kill % 2}"
        old = worker_pids(gateway.process.pid)[node]
        path = _socket_of(old)
        killed = time.monotonic()
        os.kill(old, signal.SIGKILL)
        # Serving again: a new process holds the policy and accepts on the socket.
        wait_until(lambda: worker_pids(gateway.process.pid).get(node) not in (None, old), 5)  # noqa: B023
        wait_until(lambda: _accepts(path), 5)  # noqa: B023
        restarts.append(time.monotonic() - killed)
    return load.results(), restarts


def _answers(parts: Components) -> Callable[[], bool]:
    def check() -> bool:
        try:
            parts.status()
        except httpx.HTTPError:
            return False
        return True
    return check


def _socket_of(pid: int) -> str:
    arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return arguments[arguments.index(b"--socket") + 1].decode()


def _accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def restart_control_plane(work: Path, backup: FaultServer, rate: float,
                          seconds: float) -> tuple[list[Result], float, float, float]:
    policy = work / "policy.yaml"
    policy.write_text(POLICY.format(primary=backup.base_url, backup=backup.base_url,
                                    closed=free_port()))
    parts = Components(work, policy)
    try:
        parts.start_all()
        load = Load(parts.url, "direct", rate, seconds)
        time.sleep(seconds * 0.25)
        control_plane = parts.processes["control-plane"]
        control_plane.send_signal(signal.SIGTERM)
        control_plane.wait(10)
        down_at = time.monotonic()
        time.sleep(seconds * 0.25)
        down_for = time.monotonic() - down_at
        parts.start_control_plane()
        serving = wait_until(_answers(parts), 15)  # the process's own start
        resynced = serving + wait_until(parts.all_acked, 15)
        return load.results(), down_for, serving, resynced
    finally:
        parts.stop()


def _failures(results: list[Result]) -> str:
    bad = Counter(status for _, _, status in results if status != 200)
    detail = ", ".join(f"{count} x {status or 'no answer'}"
                       for status, count in sorted(bad.items()))
    return f"{sum(bad.values())} of {len(results)}" + (f" ({detail})" if detail else "")


def report_latency(gateway: Gateway, rounds: int, per_round: int) -> None:
    print(f"## Failover latency ({rounds} interleaved rounds of {per_round} sequential "
          "requests per case, 20 requests/s)\n")
    print("| case | p50 ms | p90 ms | added p50 ms |\n|---|---|---|---|")
    latencies = failover_latency(gateway, rounds, per_round)
    base = statistics.median(latencies["healthy target first"])
    for name, values in latencies.items():
        p50 = statistics.median(values)
        print(f"| {name} | {p50:.2f} | {_percentile(values, 90):.2f} | {p50 - base:+.2f} |")


def report_workers(gateway: Gateway, rate: float, seconds: float) -> None:
    print(f"\n## ext_proc worker SIGKILLed 3 times under {rate:.0f} requests/s for "
          f"{seconds:.0f} s (2 workers)\n")
    print("| upstream latency | failed requests | killed worker serving again after |")
    print("|---|---|---|")
    for delay in (0.0, 0.1):
        results, restarts = kill_workers(gateway, rate, seconds, delay)
        print(f"| {delay * 1000:.0f} ms | {_failures(results)} | "
              f"{', '.join(f'{r:.2f} s' for r in restarts)} |")


def report_control_plane(work: Path, backup: FaultServer, rate: float, seconds: float) -> None:
    print(f"\n## Control plane stopped and restarted under {rate:.0f} requests/s for "
          f"{seconds:.0f} s\n")
    results, down_for, serving, resynced = restart_control_plane(work, backup, rate, seconds)
    print("| failed requests | down for | restarted process serves after | Envoy and both "
          "workers ACKed again after |")
    print("|---|---|---|---|")
    print(f"| {_failures(results)} | {down_for:.1f} s | {serving:.2f} s | {resynced:.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    parser.add_argument("--rate", type=float, default=100, help="requests/s of steady load")
    parser.add_argument("--seconds", type=float, default=8, help="length of each loaded run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=60)
    parser.add_argument("--only", choices=["latency", "workers", "control-plane"])
    args = parser.parse_args()
    run = {"latency", "workers", "control-plane"} if args.only is None else {args.only}
    primary, backup = FaultServer("primary").start(), FaultServer("backup").start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
            work = Path(tmp)
            (work / "up").mkdir()
            (work / "parts").mkdir()
            if run & {"latency", "workers"}:
                gateway = start_gateway(POLICY.format(
                    primary=primary.base_url, backup=backup.base_url, closed=free_port()),
                    work / "up")
                try:
                    if "latency" in run:
                        report_latency(gateway, args.rounds, args.per_round)
                    if "workers" in run:
                        report_workers(gateway, args.rate, args.seconds)
                finally:
                    gateway.stop()
            if "control-plane" in run:
                report_control_plane(work / "parts", backup, args.rate, args.seconds)
    finally:
        primary.stop()
        backup.stop()


if __name__ == "__main__":
    main()

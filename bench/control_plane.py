"""Control-plane scale: compile time, a real Envoy's ACK, fan-out to many ADS clients, and
memory across many pushes.

Every scenario runs in this process (the control plane) against child processes (Envoy, the
simulated clients), is bounded in time and uses loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.policy import PolicyShape, generate
from bench.procstat import sample
from control_plane.bootstrap import BootstrapSettings
from control_plane.compiler import GatewaySettings, compile_policy
from control_plane.envoy_process import start_envoy
from control_plane.policy import load_documents
from control_plane.service import ControlPlane
from control_plane.xds.resources import CLUSTER, LISTENER, ROUTE

ENVOY_TYPES = (CLUSTER, LISTENER, ROUTE)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def docs_for(models: int, variant: int = 0) -> dict[str, str]:
    """A policy of `models` models; `variant` changes its content (and so its version)."""
    text = generate(PolicyShape(models=models))
    return {"policy.yaml": text + f"defaults: {{timeout: {300 + variant}s}}\n"}


def measure_compile(models: int) -> dict[str, Any]:
    docs = docs_for(models)
    started = time.perf_counter()
    policy = load_documents(docs)
    loaded = time.perf_counter()
    snapshot = compile_policy(policy, GatewaySettings())
    compiled = time.perf_counter()
    size = sum(len(body) for type_url in snapshot.resources
               for body in snapshot.serialized(type_url).values())
    return {"models": models, "load_s": loaded - started, "compile_s": compiled - loaded,
            "serialized_bytes": size}


def _acked(control_plane: ControlPlane, version: str, prefix: str, count: int) -> int:
    """How many clients whose node id starts with `prefix` ACKed `version` for every type."""
    return sum(1 for status in control_plane.cache.clients.values()
               if status.node_id.startswith(prefix)
               and all(status.acked.get(t) == version for t in ENVOY_TYPES)) if count else 0


async def _wait_acked(control_plane: ControlPlane, version: str, prefix: str, count: int,
                      timeout_s: float) -> float:
    """Seconds until `count` clients ACKed `version`; raises TimeoutError."""
    started = time.perf_counter()
    deadline = started + timeout_s
    while _acked(control_plane, version, prefix, count) < count:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{count} clients did not ACK {version} in {timeout_s}s")
        await asyncio.sleep(0.002)
    return time.perf_counter() - started


async def envoy_ack(models: int, timeout_s: float = 60.0) -> dict[str, Any]:
    """A real Envoy holds a one-model policy; then `models` models are applied. Measured: the
    time from reading the policy text to Envoy's ACK of clusters, listener and routes."""
    control_plane = ControlPlane(GatewaySettings(listener_port=free_port()))
    control_plane.apply(docs_for(1))
    xds_port = free_port()
    server = await control_plane.serve_xds("127.0.0.1", xds_port)
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        admin_port = free_port()
        envoy = await start_envoy(BootstrapSettings(
            node_id="bench-envoy", xds_host="127.0.0.1", xds_port=xds_port,
            ext_proc_sockets=(f"{work}/worker-0.sock",), admin_port=admin_port), Path(work))
        try:
            await _wait_acked(control_plane, control_plane.status.version, "bench-envoy", 1,
                              timeout_s)
            docs = docs_for(models, variant=1)
            started = time.perf_counter()
            control_plane.apply(docs)
            applied = time.perf_counter()
            version = control_plane.status.version
            per_type = await _ack_times(control_plane, version, "bench-envoy", timeout_s)
            acked = time.perf_counter()
            envoy_rss = sample(envoy.pid).rss_bytes
        finally:
            with contextlib.suppress(ProcessLookupError):
                envoy.terminate()
            await envoy.wait()
            await server.stop(0)
    return {"models": models, "apply_s": applied - started, "push_and_ack_s": acked - applied,
            "total_s": acked - started, "envoy_rss_bytes": envoy_rss,
            "acked_after_apply_s": {t.rsplit(".", 1)[-1]: v - applied for t, v in per_type.items()}}


async def _ack_times(control_plane: ControlPlane, version: str, node: str,
                     timeout_s: float) -> dict[str, float]:
    """When the client `node` ACKed `version`, per type."""
    deadline = time.perf_counter() + timeout_s
    seen: dict[str, float] = {}
    while len(seen) < len(ENVOY_TYPES):
        for status in control_plane.cache.clients.values():
            if status.node_id != node:
                continue
            for type_url in ENVOY_TYPES:
                if type_url not in seen and status.acked.get(type_url) == version:
                    seen[type_url] = time.perf_counter()
                if type_url in status.nacked and status.nacked[type_url][0] == version:
                    raise RuntimeError(f"{node} refused {type_url}: {status.nacked[type_url][1]}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{node} did not ACK {version} in {timeout_s}s")
        await asyncio.sleep(0.002)
    return seen


async def fanout(clients: int, models: int, pushes: int, timeout_s: float = 300.0,
                 memory_every: int = 100) -> dict[str, Any]:
    """`clients` simulated ADS clients in a child process; `pushes` consecutive policy changes,
    each waited for until every client ACKed it. Memory is sampled every `memory_every`."""
    control_plane = ControlPlane(GatewaySettings())
    control_plane.apply(docs_for(models))
    xds_port = free_port()
    server = await control_plane.serve_xds("127.0.0.1", xds_port)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.xds_client", "--address", f"127.0.0.1:{xds_port}",
        "--clients", str(clients), "--seconds", str(timeout_s), "--prefix", "sim",
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    push_s: list[float] = []
    memory: list[dict[str, float]] = []
    try:
        await _wait_acked(control_plane, control_plane.status.version, "sim", clients,
                          timeout_s)
        variants = [docs_for(models, variant) for variant in range(1, 3)]
        tracemalloc.start()
        deadline = time.perf_counter() + timeout_s
        for push in range(pushes):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{push} pushes in {timeout_s}s")
            started = time.perf_counter()
            control_plane.apply(variants[push % 2])
            await _wait_acked(control_plane, control_plane.status.version, "sim", clients,
                              timeout_s)
            push_s.append(time.perf_counter() - started)
            if push % memory_every == 0 or push == pushes - 1:
                gc.collect()
                current, _ = tracemalloc.get_traced_memory()
                memory.append({"push": push, "rss_mb": sample(os.getpid()).rss_bytes / 2**20,
                               "traced_mb": current / 2**20})
        tracemalloc.stop()
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        await child.wait()
        await server.stop(0)
    ordered = sorted(push_s)
    return {"clients": clients, "models": models, "pushes": pushes,
            "push_p50_s": ordered[len(ordered) // 2], "push_max_s": ordered[-1],
            "first_push_s": push_s[0], "memory": memory}


def describe(results: Mapping[str, Any]) -> str:
    lines = []
    for row in results.get("compile", []):
        lines.append(f"compile {row['models']:>6} models: load {row['load_s']:.3f}s, "
                     f"compile {row['compile_s']:.3f}s, {row['serialized_bytes'] / 2**20:.1f} MiB")
    for row in results.get("envoy_ack", []):
        lines.append(f"envoy   {row['models']:>6} models: apply {row['apply_s']:.3f}s + push/ACK "
                     f"{row['push_and_ack_s']:.3f}s = {row['total_s']:.3f}s; Envoy RSS "
                     f"{row['envoy_rss_bytes'] / 2**20:.0f} MiB")
    for row in results.get("fanout", []):
        memory = row["memory"]
        lines.append(
            f"fanout  {row['clients']} clients x {row['models']} models, {row['pushes']} pushes: "
            f"p50 {row['push_p50_s']:.3f}s max {row['push_max_s']:.3f}s; RSS "
            f"{memory[0]['rss_mb']:.0f} -> {memory[-1]['rss_mb']:.0f} MiB, traced "
            f"{memory[0]['traced_mb']:.1f} -> {memory[-1]['traced_mb']:.1f} MiB")
    return "\n".join(lines)


__all__ = ["describe", "envoy_ack", "fanout", "measure_compile", "replace"]

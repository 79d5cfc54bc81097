"""Process supervision for `switchboard up` and the single-component commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from control_plane.bootstrap import BootstrapSettings
from control_plane.budget_watch import BudgetWatch
from control_plane.compiler import GatewaySettings
from control_plane.envoy_process import Drain, start_envoy
from control_plane.health import serve_health
from control_plane.housekeeping import Housekeeper
from control_plane.runtime import serve_admin, stop_on_signals, wait_first
from control_plane.service import ControlPlane
from control_plane.sources import FileSource
from control_plane.usage import open_ledgers
from ext_proc.envoy_stats import admin_stats_url, with_envoy_stats
from ext_proc.pool import PoolSettings, WorkerPool, socket_path
from ext_proc.secrets import DEFAULT_SECRETS_DIR

if TYPE_CHECKING:
    from control_plane.kube.leader import LeaderElector

log = structlog.get_logger("up")


@dataclass(frozen=True)
class UpSettings:
    gateway: GatewaySettings
    policy_path: str | None
    default_docs: Mapping[str, str]
    workers: int = 2
    xds_port: int = 18000
    admin_port: int = 8080
    envoy_admin_port: int = 9901
    # The workers' /healthz and /metrics on loopback; None: not served.
    ext_proc_health_port: int | None = None
    log_level: str = "info"


async def run_up(settings: UpSettings, work_dir: Path) -> int:
    stop = stop_on_signals()
    control_plane = ControlPlane(settings.gateway)
    control_plane.apply(settings.default_docs)
    follow = None
    if settings.policy_path is not None:
        follow = asyncio.create_task(control_plane.follow(FileSource(settings.policy_path)))
    xds = await control_plane.serve_xds("127.0.0.1", settings.xds_port)
    # One control plane next to the workers: it always leads, and shares their SQLite file.
    ledgers = open_ledgers()
    housekeeper = Housekeeper(lambda: control_plane.policy, ledgers)
    housekeeping = asyncio.create_task(housekeeper.run())
    budget_watch = asyncio.create_task(BudgetWatch(control_plane, ledgers).run())
    admin = await serve_admin(control_plane, "127.0.0.1", settings.admin_port,
                              ledgers=ledgers, housekeeper=housekeeper)
    pool = WorkerPool(PoolSettings(
        workers=settings.workers, socket_dir=str(work_dir / "sockets"),
        xds_address=f"127.0.0.1:{settings.xds_port}",
        secrets_dir=os.environ.get("SWITCHBOARD_SECRETS_DIR", DEFAULT_SECRETS_DIR),
        log_level=settings.log_level))
    pool_task = asyncio.create_task(pool.run())
    health = None
    if settings.ext_proc_health_port is not None:
        health = await serve_health(pool.healthy, "127.0.0.1", settings.ext_proc_health_port,
                                    with_envoy_stats(pool.metrics,
                                                     admin_stats_url(settings.envoy_admin_port)))
    if not await pool.wait_serving():
        log.error("workers did not start serving in time; starting Envoy anyway")
    envoy = await start_envoy(BootstrapSettings(
        node_id=f"switchboard-{socket.gethostname()}", xds_host="127.0.0.1",
        xds_port=settings.xds_port, ext_proc_sockets=tuple(pool.sockets),
        admin_port=settings.envoy_admin_port), work_dir)
    g = settings.gateway
    log.info("switchboard is up", url=f"http://{g.loopback_host}:{g.listener_port}/v1",
             policy=settings.policy_path or "built-in default",
             version=control_plane.status.version)
    await wait_first(stop.wait(), envoy.wait())
    code = envoy.returncode
    log.info("stopping")
    with contextlib.suppress(ProcessLookupError):
        envoy.terminate()
    await envoy.wait()
    if health is not None:
        health.close()
    await pool.stop()
    pool_task.cancel()
    if follow is not None:
        follow.cancel()
    housekeeping.cancel()
    budget_watch.cancel()
    admin.should_exit = True
    await xds.stop(1)
    await ledgers.close()
    return 0 if code in (None, 0, -15) or stop.is_set() else 1


async def run_control_plane(gateway: GatewaySettings, args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    control_plane = ControlPlane(gateway, state_redis_url=args.state_redis_url,
                                 local_sqlite=not args.no_local_ledger)
    tasks = [asyncio.create_task(control_plane.follow(FileSource(args.policy)))]
    elector: LeaderElector | None = None
    if args.policy_configmap or args.leader_election_lease:
        from control_plane.kube.wiring import campaign, follow_configmap

        if args.policy_configmap:
            tasks.append(follow_configmap(control_plane, args.policy_configmap))
        if args.leader_election_lease:
            elector, task = campaign(args.leader_election_lease, args.leader_election_identity)
            tasks.append(task)
    # Every replica serves xDS; only the leader (or the only replica) does housekeeping.
    ledgers = open_ledgers()
    housekeeper = Housekeeper(
        lambda: control_plane.policy, ledgers, leadership=elector,
        local_sqlite=control_plane.local_sqlite,
        interval=timedelta(seconds=args.housekeeping_interval_s))
    housekeeping = asyncio.create_task(housekeeper.run())
    # Every replica: each pushes the lane to its own Envoys.
    budget_watch = asyncio.create_task(BudgetWatch(control_plane, ledgers).run())
    xds = await control_plane.serve_xds(args.listen_host, args.xds_port)
    admin = await serve_admin(control_plane, args.listen_host, args.admin_port,
                              ledgers=ledgers, housekeeper=housekeeper)
    await wait_first(stop.wait(), *tasks)
    housekeeping.cancel()
    budget_watch.cancel()
    # wait_first cancelled the others; let the elector release the Lease before exiting, so a
    # follower takes over within one retry period instead of a whole lease duration.
    await asyncio.wait([*tasks, housekeeping], timeout=5)
    admin.should_exit = True
    await xds.stop(5)
    await ledgers.close()
    return 0


async def run_ext_proc(settings: PoolSettings, health_port: int | None,
                       envoy_stats_url: str | None = None) -> int:
    """`envoy_stats_url`: Envoy's admin statistics, appended to the workers' /metrics."""
    stop = stop_on_signals()
    pool = WorkerPool(settings)
    task = asyncio.create_task(pool.run())
    if health_port is not None:
        await serve_health(pool.healthy, "0.0.0.0", health_port,
                           with_envoy_stats(pool.metrics, envoy_stats_url))
    await wait_first(stop.wait(), task)
    await pool.stop()
    return 0


async def run_envoy(args: argparse.Namespace) -> int:
    host, _, port = args.xds_address.rpartition(":")
    sockets = tuple(socket_path(args.ext_proc_socket_dir, i) for i in range(args.workers))
    work_dir = Path(os.environ.get("SWITCHBOARD_WORK_DIR", "/tmp"))
    envoy = await start_envoy(BootstrapSettings(
        node_id=f"switchboard-{socket.gethostname()}", xds_host=host, xds_port=int(port),
        ext_proc_sockets=sockets, admin_host=args.admin_host, admin_port=args.admin_port),
        work_dir, args.log_level, Drain(args.drain_time_s, args.drain_strategy))
    stop = stop_on_signals()
    await wait_first(stop.wait(), envoy.wait())
    with contextlib.suppress(ProcessLookupError):
        envoy.terminate()
    return await envoy.wait()

"""One ext_proc worker process: its own Unix socket, its own ADS stream for the policy."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal

import grpc
import structlog
from envoy.service.accesslog.v3 import als_pb2_grpc as als_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from prometheus_client import CollectorRegistry

from control_plane.logs import configure_logging
from ext_proc.config_client import ConfigClient
from ext_proc.gate import Gate
from ext_proc.ledgers import Ledgers, default_state_dir
from ext_proc.liveness import add_liveness
from ext_proc.meter import Meter
from ext_proc.metering.admission_metrics import AdmissionMetrics
from ext_proc.metering.metrics import AttemptMetrics
from ext_proc.pool_metrics import METRICS_DIR_ENV, SnapshotPublisher
from ext_proc.release import ReservationReleaser
from ext_proc.retention import prune_periodically
from ext_proc.secrets import DEFAULT_SECRETS_DIR
from ext_proc.server import Processor

log = structlog.get_logger("worker")

# How long a new worker waits for its first policy before it serves anyway (with 503s).
FIRST_POLICY_WAIT_S = 30.0
GRACE_S = 5.0


async def serve(socket_path: str, xds_address: str, node_id: str, secrets_dir: str,
                state_dir: str) -> None:
    config = ConfigClient(xds_address, node_id, secrets_dir)
    ledgers = Ledgers(state_dir, secrets_dir)
    # Counted in memory; the pool serves the sum of every worker's snapshots on /metrics.
    registry = CollectorRegistry()
    publisher = SnapshotPublisher(registry, os.environ.get(METRICS_DIR_ENV))
    publishing = asyncio.create_task(publisher.run())
    meter = Meter(ledgers, AttemptMetrics(registry))
    admissions = AdmissionMetrics(registry)
    gate = Gate(lambda: config.view, ledgers, metrics=admissions)
    config_task = asyncio.create_task(config.run())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(config.ready.wait(), FIRST_POLICY_WAIT_S)
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
    ])
    ep_grpc.add_ExternalProcessorServicer_to_server(
        Processor(config, gate, meter), server)
    releaser = ReservationReleaser(lambda: config.view, ledgers, meter, admissions)
    pruning = asyncio.create_task(prune_periodically(lambda: config.view, ledgers))
    als_grpc.add_AccessLogServiceServicer_to_server(releaser, server)
    add_liveness(server)  # the pool's ping
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    server.add_insecure_port(f"unix:{socket_path}")
    await server.start()
    log.info("worker serving", socket=socket_path, version=config.view.version)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(GRACE_S)
    pruning.cancel()
    await meter.drain()
    await releaser.drain()
    await ledgers.close()
    publishing.cancel()
    await publisher.publish()
    config_task.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ext_proc.worker")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--xds-address", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--secrets-dir", default=DEFAULT_SECRETS_DIR)
    parser.add_argument("--state-dir", default=default_state_dir(),
                        help="Where the SQLite ledger lives unless the policy names a file.")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    structlog.contextvars.bind_contextvars(worker=args.node_id)
    asyncio.run(serve(args.socket, args.xds_address, args.node_id, args.secrets_dir,
                      args.state_dir))


if __name__ == "__main__":
    main()

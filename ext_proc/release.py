"""Releases each finished request's reservation, from Envoy's gRPC access log, and records
the usage of requests Envoy forwarded alone (ext_proc/direct.py).

Envoy writes one entry per request when it is over, however it ended (served, failed after
every fallback, client gone), and only for requests holding a reservation, forwarded alone or
admitted by Envoy's lane (whose admissions are counted here); entries arrive in batches.
Each attempt charges its real cost with its usage record, possibly in another worker, so the
reservation is handed back only once every attempt's record is stored (released earlier, the
request would count for nothing in between): the release is retried until then, or until
RECORD_WAIT_S, after which an attempt is taken to have produced no record (a connection
refused before anything was sent). An entry that never arrives (this worker died) is covered
by the reservation's TTL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable

import grpc
import structlog
from envoy.service.accesslog.v3 import als_pb2
from envoy.service.accesslog.v3 import als_pb2_grpc as als_grpc
from prometheus_client import CollectorRegistry

from ext_proc.contract import (
    LANE_ADMITTED_KEY,
    METADATA_NAMESPACE,
    MODEL_KEY,
    RESERVATION_METADATA_KEY,
)
from ext_proc.direct import DirectUsage
from ext_proc.ledgers import Ledgers
from ext_proc.meter import Meter, MeteredAttempt
from ext_proc.metering.admission_metrics import AdmissionMetrics, AdmissionOutcome
from ext_proc.state.ledger import LedgerError
from ext_proc.view import ProcessorView

log = structlog.get_logger("release")

RECORD_WAIT_S = 5.0
RETRY_INTERVAL_S = 0.05


class ReservationReleaser(als_grpc.AccessLogServiceServicer):
    def __init__(self, view: Callable[[], ProcessorView], ledgers: Ledgers,
                 meter: Meter, admissions: AdmissionMetrics | None = None) -> None:
        self._view = view
        self._ledgers = ledgers
        self._meter = meter
        self._admissions = admissions or AdmissionMetrics(CollectorRegistry())
        self._pending: set[asyncio.Task[None]] = set()
        self._direct_usage = DirectUsage()

    async def StreamAccessLogs(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[als_pb2.StreamAccessLogsMessage],
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> als_pb2.StreamAccessLogsResponse:
        async for message in request_iterator:
            view = self._view()
            forwarded: list[MeteredAttempt] = []
            releases: list[tuple[str, int]] = []
            admitted: Counter[tuple[str, str]] = Counter()  # by team and model
            for entry in message.http_logs.log_entry:
                namespace = entry.common_properties.metadata.filter_metadata.get(
                    METADATA_NAMESPACE)
                if namespace is None:
                    continue
                if (team := namespace.fields.get(LANE_ADMITTED_KEY)) is not None:
                    model = namespace.fields.get(MODEL_KEY)
                    admitted[team.string_value,
                             model.string_value if model is not None else ""] += 1
                attempts = entry.common_properties.upstream_request_attempt_count
                if (direct := self._direct_usage(entry, namespace, view)) is not None:
                    # One record covers the request, however many attempts Envoy made.
                    forwarded.append(direct)
                    attempts = 1
                if RESERVATION_METADATA_KEY in namespace.fields:
                    releases.append((
                        namespace.fields[RESERVATION_METADATA_KEY].string_value, attempts))
            for (team_name, model_name), count in admitted.items():
                self._admissions.decided(team_name, model_name, AdmissionOutcome.ADMITTED,
                                         count)
            if forwarded:
                # Written before the releases (same ledger thread, in order), all in one write.
                self._meter.submit(view, *forwarded)
            for reservation_id, attempts in releases:
                task = asyncio.create_task(self._release(reservation_id, attempts))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
        return als_pb2.StreamAccessLogsResponse()

    async def _release(self, reservation_id: str, attempts: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECORD_WAIT_S
        try:
            ledger = await self._ledgers.get(self._view().state)
            while await ledger.release_when_recorded(reservation_id, attempts) is None:
                if loop.time() >= deadline:
                    await ledger.release(reservation_id)
                    return
                await asyncio.sleep(RETRY_INTERVAL_S)
        except LedgerError as exc:
            log.error("reservation not released; it expires by its TTL",
                      reservation=reservation_id, error=str(exc))

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

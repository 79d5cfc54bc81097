"""Releases each finished request's reservation, from Envoy's gRPC access log.

Envoy writes one entry per request when it is over, however it ended (served, failed after
every fallback, client gone), and only for requests holding a reservation; entries arrive in
batches. Each attempt has already charged its real cost, so all that is left is to hand the
worst-case reservation back. An entry that never arrives (this worker died) is covered by the
reservation's TTL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import structlog
from envoy.service.accesslog.v3 import als_pb2
from envoy.service.accesslog.v3 import als_pb2_grpc as als_grpc

from ext_proc.contract import METADATA_NAMESPACE, RESERVATION_METADATA_KEY
from ext_proc.ledgers import Ledgers
from ext_proc.state.ledger import LedgerError
from ext_proc.view import ProcessorView

log = structlog.get_logger("release")


class ReservationReleaser(als_grpc.AccessLogServiceServicer):
    def __init__(self, view: Callable[[], ProcessorView], ledgers: Ledgers) -> None:
        self._view = view
        self._ledgers = ledgers

    async def StreamAccessLogs(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[als_pb2.StreamAccessLogsMessage],
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> als_pb2.StreamAccessLogsResponse:
        async for message in request_iterator:
            for entry in message.http_logs.log_entry:
                namespace = entry.common_properties.metadata.filter_metadata.get(
                    METADATA_NAMESPACE)
                if namespace is None or RESERVATION_METADATA_KEY not in namespace.fields:
                    continue
                await self._release(namespace.fields[RESERVATION_METADATA_KEY].string_value)
        return als_pb2.StreamAccessLogsResponse()

    async def _release(self, reservation_id: str) -> None:
        try:
            ledger = await self._ledgers.get(self._view().state)
            await ledger.release(reservation_id)
        except LedgerError as exc:
            log.error("reservation not released; it expires by its TTL",
                      reservation=reservation_id, error=str(exc))

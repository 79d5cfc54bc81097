"""The ExternalProcessor gRPC service of one worker process, for both call sites.

Envoy names the site in the stream's gRPC metadata: the router-level call admits the request
(once), the upstream call rewrites one attempt and meters it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import structlog
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

from ext_proc.attempt import Attempt
from ext_proc.config_client import ConfigClient
from ext_proc.contract import ROUTER_SITE, SITE_METADATA_KEY
from ext_proc.gate import Gate
from ext_proc.meter import Meter, MeteredAttempt

log = structlog.get_logger("ext_proc")


class Processor(ep_grpc.ExternalProcessorServicer):
    def __init__(self, config: ConfigClient, gate: Gate, meter: Meter) -> None:
        self._config = config
        self._gate = gate
        self._meter = meter

    async def Process(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[ep.ProcessingRequest],
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> AsyncIterator[ep.ProcessingResponse]:
        site = dict(context.invocation_metadata() or ()).get(SITE_METADATA_KEY)
        if site == ROUTER_SITE:
            async for request in request_iterator:
                yield await self._gate.admit(request)
            return
        attempt = Attempt(lambda: self._config.view)
        started = time.monotonic()
        cancelled = False
        try:
            async for request in request_iterator:
                yield attempt.handle(request)
        except asyncio.CancelledError:
            # Envoy cancels the stream when the attempt ends early (refused connection,
            # client gone); nothing to answer, but what was used is still recorded.
            attempt.outcome = attempt.outcome or "cancelled"
            cancelled = True
            raise
        finally:
            record = attempt.usage_record(cancelled)
            if record is not None:
                self._meter.submit(attempt.view,
                                   MeteredAttempt(record, attempt.caller, attempt.labels()))
            elif attempt.refused_status is not None:
                self._meter.refused(attempt.labels(), attempt.refused_status)
            log.info("attempt", **attempt.summary(),
                     duration_ms=round((time.monotonic() - started) * 1000, 2))

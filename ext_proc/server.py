"""The ExternalProcessor gRPC service of one worker process."""

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

log = structlog.get_logger("ext_proc")


class Processor(ep_grpc.ExternalProcessorServicer):
    def __init__(self, config: ConfigClient) -> None:
        self._config = config

    async def Process(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[ep.ProcessingRequest],
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> AsyncIterator[ep.ProcessingResponse]:
        attempt = Attempt(lambda: self._config.view)
        started = time.monotonic()
        try:
            async for request in request_iterator:
                yield attempt.handle(request)
        except asyncio.CancelledError:
            # Envoy cancels the stream when the attempt ends early (refused connection,
            # client gone); nothing to answer.
            attempt.outcome = attempt.outcome or "cancelled"
            raise
        finally:
            log.info("attempt", **attempt.summary(),
                     duration_ms=round((time.monotonic() - started) * 1000, 2))

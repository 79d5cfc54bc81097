"""Keeps the worker's view current: an ADS client for the ProcessorConfig resource.

When the control plane is away the worker keeps serving the last view it had and reconnects
with back-off; on reconnect it resumes from the version it holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import grpc
import structlog
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

from ext_proc.contract import PROCESSOR_RESOURCE_NAME, PROCESSOR_TYPE_URL
from ext_proc.view import ProcessorView, build_view
from protos.switchboard.v1 import processor_pb2

log = structlog.get_logger("config")


class ConfigClient:
    def __init__(self, xds_address: str, node_id: str, secrets_dir: str) -> None:
        self._address = xds_address
        self._node = base_pb2.Node(id=node_id, cluster="switchboard-ext-proc")
        self._secrets_dir = secrets_dir
        self.view = ProcessorView.empty()
        self.ready = asyncio.Event()
        self._applied = b""  # the serialized config the view was built from

    async def run(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._stream()
            except grpc.aio.AioRpcError as exc:
                log.warning("control plane unreachable; serving the last policy",
                            code=exc.code().name, version=self.view.version, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _stream(self) -> None:
        outbox: asyncio.Queue[discovery_pb2.DiscoveryRequest] = asyncio.Queue()
        outbox.put_nowait(self._request(version=self.view.version))

        async def requests() -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
            while True:
                yield await outbox.get()

        async with grpc.aio.insecure_channel(self._address) as channel:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            async for response in stub.StreamAggregatedResources(requests()):
                outbox.put_nowait(await self._apply(response))

    async def _apply(
        self, response: discovery_pb2.DiscoveryResponse
    ) -> discovery_pb2.DiscoveryRequest:
        config = processor_pb2.ProcessorConfig()
        found = [r for r in response.resources if r.Is(config.DESCRIPTOR)]
        if len(found) != 1 or not found[0].Unpack(config):
            error = f"expected one {PROCESSOR_TYPE_URL} resource, got {len(response.resources)}"
            log.error("config rejected", version=response.version_info, error=error)
            return self._request(self.view.version, response.nonce, error)
        if self.ready.is_set() and found[0].value == self._applied:
            # Only Envoy's part changed (the lane's budgets): nothing to build again.
            self.view = dataclasses.replace(self.view, version=response.version_info)
            return self._request(response.version_info, response.nonce)
        self.view = await build_view(response.version_info, config, self._secrets_dir)
        self._applied = found[0].value
        self.ready.set()
        log.info("policy applied", version=response.version_info,
                 providers=len(config.providers), models=len(config.models))
        return self._request(response.version_info, response.nonce)

    def _request(self, version: str, nonce: str = "",
                 error: str = "") -> discovery_pb2.DiscoveryRequest:
        request = discovery_pb2.DiscoveryRequest(
            version_info=version, node=self._node, type_url=PROCESSOR_TYPE_URL,
            resource_names=[PROCESSOR_RESOURCE_NAME], response_nonce=nonce)
        if error:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        return request

"""Aggregated Discovery Service, state of the world, over grpc.aio.

One stream per client. Every snapshot change is pushed in PUSH_ORDER to each type the client
subscribed to. ACKs and NACKs are recorded per client; a NACK keeps the client on its last
good config, and nothing is re-sent until the next snapshot.

Responses leave as bytes: the snapshot serializes each response body once and every stream
only appends its nonce (see `Snapshot.response_body`); register the service with
`add_to_server`, which sends those bytes as they are.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import structlog
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from control_plane.xds.cache import SNAPSHOT_CHANGED, ClientStatus, SnapshotCache
from control_plane.xds.resources import PUSH_ORDER
from control_plane.xds.snapshot import Snapshot

log = structlog.get_logger("xds")
_END = object()


@dataclass
class _Subscription:
    names: frozenset[str] = frozenset()  # empty: every resource of the type
    sent_version: str = ""
    nonce: str = ""


@dataclass
class _Stream:
    status: ClientStatus
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)
    nonces: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class AggregatedDiscoveryService(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, cache: SnapshotCache) -> None:
        self._cache = cache
        self._stream_ids = itertools.count(1)

    async def StreamAggregatedResources(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> AsyncIterator[bytes]:
        stream_id = next(self._stream_ids)
        events: asyncio.Queue[object] = asyncio.Queue()
        reader = asyncio.create_task(_read_requests(request_iterator, events))
        self._cache.subscribe(events)
        stream = _Stream(ClientStatus(node_id=""))
        self._cache.clients[stream_id] = stream.status
        try:
            while (event := await events.get()) is not _END:
                if event is SNAPSHOT_CHANGED:
                    types = [t for t in PUSH_ORDER if t in stream.subscriptions]
                else:
                    assert isinstance(event, discovery_pb2.DiscoveryRequest)
                    types = self._on_request(stream, event)
                for response in self._responses(stream, types):
                    yield response
        finally:
            reader.cancel()
            self._cache.unsubscribe(events)
            del self._cache.clients[stream_id]
            log.info("xds stream closed", node=stream.status.node_id)

    def _on_request(self, stream: _Stream, request: discovery_pb2.DiscoveryRequest) -> list[str]:
        """Record what the request says; return the types that need a response now."""
        if request.node.id and not stream.status.node_id:
            stream.status.node_id = request.node.id
            log.info("xds stream opened", node=request.node.id)
        type_url = request.type_url
        subscription = stream.subscriptions.setdefault(type_url, _Subscription())
        if request.response_nonce and request.response_nonce != subscription.nonce:
            return []  # answers a response that a newer one already superseded
        names = frozenset(request.resource_names)
        names_changed = names != subscription.names
        subscription.names = names
        if request.HasField("error_detail"):
            stream.status.nacked[type_url] = (subscription.sent_version,
                                              request.error_detail.message)
            log.error("config rejected by client", node=stream.status.node_id,
                      type=type_url.rsplit(".", 1)[-1], version=subscription.sent_version,
                      detail=_reason(request.error_detail.message))
            return []
        if request.response_nonce:
            stream.status.acked[type_url] = request.version_info
            stream.status.nacked.pop(type_url, None)
        return [type_url] if names_changed or not request.response_nonce else []

    def _responses(self, stream: _Stream, types: list[str]) -> list[bytes]:
        snapshot = self._cache.snapshot
        if snapshot is None:
            return []
        responses = []
        for type_url in types:
            subscription = stream.subscriptions[type_url]
            if subscription.sent_version == snapshot.version and subscription.nonce:
                continue
            subscription.sent_version = snapshot.version
            subscription.nonce = str(next(stream.nonces))
            responses.append(_response(snapshot, type_url, subscription))
        return responses


def _response(snapshot: Snapshot, type_url: str, subscription: _Subscription) -> bytes:
    nonce: bytes = discovery_pb2.DiscoveryResponse(nonce=subscription.nonce).SerializeToString()
    return snapshot.response_body(type_url, subscription.names) + nonce


def add_to_server(service: AggregatedDiscoveryService, server: grpc.aio.Server) -> None:
    """Register `service` like the generated helper does, but with responses that are
    already serialized."""
    handler = grpc.stream_stream_rpc_method_handler(
        service.StreamAggregatedResources,
        request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
        response_serializer=bytes,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "envoy.service.discovery.v3.AggregatedDiscoveryService",
        {"StreamAggregatedResources": handler}),))


async def _read_requests(requests: AsyncIterator[discovery_pb2.DiscoveryRequest],
                         events: asyncio.Queue[object]) -> None:
    try:
        async for request in requests:
            events.put_nowait(request)
    except (asyncio.CancelledError, grpc.aio.AioRpcError):
        pass
    finally:
        events.put_nowait(_END)


def _reason(detail: str) -> str:
    """Envoy's NACK detail dumps the whole resource before the reason; keep the reason."""
    return detail if len(detail) <= 600 else "..." + detail[-600:]

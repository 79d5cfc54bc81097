"""The ADS server over real gRPC: pushes, ACKs, NACKs and stale nonces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

from control_plane.compiler import GatewaySettings, compile_policy
from control_plane.policy import load_documents
from control_plane.xds.cache import SnapshotCache
from control_plane.xds.resources import CLUSTER
from control_plane.xds.server import AggregatedDiscoveryService, add_to_server
from control_plane.xds.snapshot import Snapshot

POLICY = "providers: {{demo: {{kind: mock}}}}\nmodels: {{{models}}}\n"


def snapshot(*models: str) -> Snapshot:
    """Models with a fallback target, so that each has a cluster of its own."""
    text = POLICY.format(models=", ".join(
        f"{m}: {{targets: [{{provider: demo}}, {{provider: demo, model: alt}}]}}"
        for m in models))
    return compile_policy(load_documents({"p.yaml": text}), GatewaySettings())


class Client:
    def __init__(self, stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub) -> None:
        self.outbox: asyncio.Queue[discovery_pb2.DiscoveryRequest] = asyncio.Queue()
        self.call = stub.StreamAggregatedResources(self._requests())

    async def _requests(self) -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while True:
            yield await self.outbox.get()

    def send(self, **fields: object) -> None:
        self.outbox.put_nowait(discovery_pb2.DiscoveryRequest(type_url=CLUSTER, **fields))

    async def receive(self) -> discovery_pb2.DiscoveryResponse:
        return await asyncio.wait_for(self.call.read(), 5)


Served = tuple[SnapshotCache, ads_pb2_grpc.AggregatedDiscoveryServiceStub]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    cache = SnapshotCache()
    server = grpc.aio.server()
    add_to_server(AggregatedDiscoveryService(cache), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield cache, ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    await server.stop(0)


async def test_push_ack_nack_and_a_new_snapshot(
        served: Served) -> None:
    cache, stub = served
    first = snapshot("a")
    cache.set(first)
    client = Client(stub)
    client.send(node={"id": "envoy-1"})
    response = await client.receive()
    assert response.version_info == first.version
    assert len(response.resources) == 1

    client.send(version_info=first.version, response_nonce=response.nonce)  # ACK
    second = snapshot("a", "b")
    await asyncio.sleep(0.05)
    cache.set(second)
    pushed = await client.receive()
    assert pushed.version_info == second.version
    assert len(pushed.resources) == 2

    client.send(version_info=first.version, response_nonce=pushed.nonce,
                error_detail=status_pb2.Status(code=3, message="cluster rejected"))  # NACK
    await asyncio.sleep(0.1)
    [status] = cache.clients.values()
    assert status.node_id == "envoy-1"
    assert status.acked[CLUSTER] == first.version
    assert status.nacked[CLUSTER] == (second.version, "cluster rejected")

    assert cache.set(snapshot("a", "b")) is False  # same content, same version: no push
    third = snapshot("c")
    cache.set(third)
    assert (await client.receive()).version_info == third.version
    client.call.cancel()


async def test_a_stale_nonce_gets_no_answer(
        served: Served) -> None:
    cache, stub = served
    cache.set(snapshot("a"))
    client = Client(stub)
    client.send(node={"id": "envoy-1"})
    response = await client.receive()
    client.send(version_info="", response_nonce="not-" + response.nonce)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.call.read(), 0.3)
    client.call.cancel()


def test_versions_derive_from_content() -> None:
    assert snapshot("a", "b").version == snapshot("b", "a").version
    assert snapshot("a").version != snapshot("b").version


async def test_every_stream_gets_each_push(served: Served) -> None:
    """Streams share one serialized body per snapshot; each still gets its own nonce."""
    cache, stub = served
    cache.set(snapshot("a"))
    clients = [Client(stub) for _ in range(5)]
    for index, client in enumerate(clients):
        client.send(node={"id": f"envoy-{index}"})
    first = [await client.receive() for client in clients]
    for client, response in zip(clients, first, strict=True):
        client.send(version_info=response.version_info, response_nonce=response.nonce)
    await asyncio.sleep(0.05)
    second = snapshot("a", "b")
    cache.set(second)
    pushed = [await client.receive() for client in clients]
    assert {p.version_info for p in pushed} == {second.version}
    assert all(len(p.resources) == 2 for p in pushed)
    assert all(p.nonce and p.nonce != f.nonce for p, f in zip(pushed, first, strict=True))
    for client in clients:
        client.call.cancel()

"""Simulated xDS clients: real gRPC ADS streams that subscribe like Envoy does (clusters and
listeners as wildcards, then the route configurations the listeners name) and ACK every
response after decoding its resources.

Run as its own process so that the control plane's memory is measured alone:
`python -m bench.xds_client --address 127.0.0.1:18000 --clients 100 --seconds 120`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from control_plane.xds.resources import CLUSTER, LISTENER, MESSAGE_TYPES, ROUTE


async def run_client(address: str, node_id: str) -> None:
    outbox: asyncio.Queue[discovery_pb2.DiscoveryRequest] = asyncio.Queue()
    node = base_pb2.Node(id=node_id, cluster="bench")
    for type_url in (CLUSTER, LISTENER):
        outbox.put_nowait(discovery_pb2.DiscoveryRequest(node=node, type_url=type_url))
    route_names: frozenset[str] = frozenset()

    async def requests() -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while True:
            yield await outbox.get()

    async with grpc.aio.insecure_channel(
            address, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        async for response in stub.StreamAggregatedResources(requests()):
            message_type = MESSAGE_TYPES[response.type_url]
            resources = [message_type.FromString(r.value) for r in response.resources]
            outbox.put_nowait(discovery_pb2.DiscoveryRequest(
                type_url=response.type_url, version_info=response.version_info,
                response_nonce=response.nonce,
                resource_names=sorted(route_names) if response.type_url == ROUTE else []))
            if response.type_url == LISTENER:
                names = frozenset(_route_names(resources))
                if names != route_names:
                    route_names = names
                    outbox.put_nowait(discovery_pb2.DiscoveryRequest(
                        type_url=ROUTE, resource_names=sorted(names)))


def _route_names(listeners: Sequence[object]) -> list[str]:
    names = []
    for listener in listeners:
        assert isinstance(listener, listener_pb2.Listener)
        for chain in listener.filter_chains:
            for network_filter in chain.filters:
                hcm = hcm_pb2.HttpConnectionManager()
                if network_filter.typed_config.Unpack(hcm) and hcm.HasField("rds"):
                    names.append(hcm.rds.route_config_name)
    return names


async def run_clients(address: str, clients: int, seconds: float, prefix: str) -> None:
    tasks = [asyncio.create_task(run_client(address, f"{prefix}-{i}")) for i in range(clients)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=120.0, help="exit after this long")
    parser.add_argument("--prefix", default="bench-client")
    args = parser.parse_args()
    asyncio.run(run_clients(args.address, args.clients, args.seconds, args.prefix))


if __name__ == "__main__":
    main()

"""Whether a worker's event loop still answers: a one-method gRPC service on the worker's own
socket, and the probe the pool calls it with.

A worker that exits is restarted at once; one that hangs (a blocked event loop, a deadlock)
keeps its process and its socket, and every attempt sent to it waits out Envoy's message
timeout. The probe travels the same path as Envoy's calls (the socket, gRPC, the event loop),
so an answer means the worker can serve.
"""

from __future__ import annotations

import grpc

METHOD = "/switchboard.v1.Liveness/Ping"


def _identity(data: bytes) -> bytes:
    return data


async def _pong(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return b""


def add_liveness(server: grpc.aio.Server) -> None:
    service, method = METHOD.strip("/").split("/")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {
        method: grpc.unary_unary_rpc_method_handler(
            _pong, request_deserializer=_identity, response_serializer=_identity)}),))


async def answers(socket_path: str, timeout_s: float) -> bool:
    """Whether the worker on `socket_path` answers a ping within `timeout_s`."""
    async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
        ping = channel.unary_unary(METHOD, request_serializer=_identity,
                                   response_deserializer=_identity)
        try:
            await ping(b"", timeout=timeout_s)
        except (grpc.aio.AioRpcError, OSError):
            return False
    return True

"""One translator for every (client API, backend) pair whose backend is written against the
Messages shape (see clients.py): the client side and the backend side are composed here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson

from ext_proc.contract import ClientApi
from ext_proc.translators.base import Backend, BodyMode, Translated, UpstreamRequest
from ext_proc.translators.clients import EventSink, client_side
from ext_proc.translators.common import is_success


class BackendStream(Protocol):
    def feed(self, chunk: bytes, end_of_stream: bool) -> list[dict[str, Any]]:
        """The Messages events that the next piece of the backend's stream completes. The last
        is message_stop only if the backend finished its answer, else an error event."""
        ...


class MessagesBackend(Protocol):
    def request(self, messages: dict[str, Any]) -> UpstreamRequest:
        """A Messages request (max_tokens may be absent) in the backend's schema."""
        ...

    def is_stream(self, headers: Mapping[str, str]) -> bool:
        ...

    def stream(self) -> BackendStream:
        ...

    def message(self, reply: dict[str, Any]) -> dict[str, Any] | None:
        """The backend's reply as a Messages reply with Anthropic usage; None if unreadable."""
        ...

    def error_message(self, body: bytes) -> str:
        ...


class ViaMessages:
    def __init__(self, api: ClientApi, backend: Backend,
                 side: Callable[[Backend], MessagesBackend],
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client_side(api, clock)
        self._backend = side(backend)
        self._model = backend.model
        self._status = 0
        self._stream: BackendStream | None = None
        self._sink: EventSink | None = None

    def request(self, body: dict[str, Any], raw: bytes) -> UpstreamRequest:
        return self._backend.request(self._client.messages_request(body, self._model))

    def response_body_mode(self, status: int, headers: Mapping[str, str]) -> BodyMode:
        self._status = status
        if is_success(status) and self._backend.is_stream(headers):
            self._stream = self._backend.stream()
            self._sink = self._client.stream(self._model)
            return "streamed"
        return "buffered"

    def response_body(self, body: bytes) -> Translated:
        if not is_success(self._status):
            return Translated(self._client.error(self._status,
                                                 self._backend.error_message(body)))
        try:
            reply = orjson.loads(body)
        except orjson.JSONDecodeError:
            reply = None
        message = self._backend.message(reply) if isinstance(reply, dict) else None
        if message is None:
            return Translated(self._client.error(502, "the provider returned an unreadable "
                                                      "answer"))
        return self._client.reply(message, self._model)

    def response_chunk(self, chunk: bytes, end_of_stream: bool) -> Translated:
        if self._stream is None or self._sink is None:
            return Translated(None)
        return self._sink.feed_events(self._stream.feed(chunk, end_of_stream))


def via(side: Callable[[Backend], MessagesBackend]) -> Callable[[ClientApi, Backend], ViaMessages]:
    """The registry's factory for a Messages-shaped backend."""
    def factory(api: ClientApi, backend: Backend) -> ViaMessages:
        return ViaMessages(api, backend, side)
    return factory

"""OpenAI-schema clients to OpenAI-compatible servers: the path and the model name change.

A request that already names the server's model, and asks for usage if it streams, goes as it
is, unread; replies are read to learn the usage. A stream reports no usage unless asked
(`stream_options.include_usage`), so the gateway asks, and removes the extra usage chunk again
when the client did not ask for it itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ext_proc.contract import ClientApi
from ext_proc.translators.base import (
    Backend,
    BodyMode,
    ClientRequest,
    Translated,
    UpstreamRequest,
    Usage,
)
from ext_proc.translators.common import reply_usage, same_schema_body_mode, usage_from_openai
from ext_proc.translators.paths import join_path
from ext_proc.translators.sse import SseParser, encode, json_data

_SUFFIX = {ClientApi.OPENAI_CHAT: "/chat/completions", ClientApi.OPENAI_EMBEDDINGS: "/embeddings"}


class OpenAIToOpenAI:
    def __init__(self, api: ClientApi, backend: Backend, path: str | None = None) -> None:
        self._path = path or join_path(backend.base_url, _SUFFIX[api])
        self._model = backend.model
        self._parser = SseParser()
        self._strip_usage_chunk = False
        self._usage: Usage | None = None

    def unchanged(self, request: ClientRequest) -> UpstreamRequest | None:
        if request.model != self._model or (request.stream and not request.include_usage):
            return None
        return UpstreamRequest(self._path, None)

    def request(self, body: dict[str, Any], raw: bytes) -> UpstreamRequest:
        client = ClientRequest.of_body(body)
        changes: dict[str, Any] = {}
        if client.model != self._model:
            changes["model"] = self._model
        if client.stream and not client.include_usage:
            options = body.get("stream_options")
            changes["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                         "include_usage": True}
            self._strip_usage_chunk = True
        if not changes:
            return UpstreamRequest(self._path, None)
        return UpstreamRequest(self._path, orjson.dumps({**body, **changes}))

    def response_body_mode(self, status: int, headers: Mapping[str, str]) -> BodyMode:
        return same_schema_body_mode(status, headers)

    def response_body(self, body: bytes) -> Translated:
        return Translated(None, reply_usage(body, usage_from_openai))

    def response_chunk(self, chunk: bytes, end_of_stream: bool) -> Translated:
        events = self._parser.feed(chunk, end_of_stream)
        seen = False
        kept: list[bytes] = []
        for event in events:
            data = json_data(event)
            usage = data.get("usage") if data is not None else None
            if isinstance(usage, dict):
                self._usage, seen = usage_from_openai(usage), True
                if self._strip_usage_chunk and not data.get("choices"):  # type: ignore[union-attr]
                    continue  # the chunk only the gateway asked for
            kept.append(encode(event.data.encode()))
        usage_now = self._usage if seen else None
        if not self._strip_usage_chunk:
            return Translated(None, usage_now)
        # Re-emitted event by event, so a chunk may carry nothing until its event completes.
        return Translated(b"".join(kept), usage_now)

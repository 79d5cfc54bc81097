"""OpenAI-schema clients to OpenAI-compatible servers: the path and the model name change.

With `read_usage` the response is read (never rewritten) for its usage: the whole body, or the
stream's usage chunk, which OpenAI sends only when the client asked for include_usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ext_proc.contract import ClientApi
from ext_proc.translators.base import Backend, BodyMode, Translated, UpstreamRequest, Usage
from ext_proc.translators.common import is_event_stream, is_success, usage_from_openai
from ext_proc.translators.paths import join_path
from ext_proc.translators.sse import SseParser, json_data

_SUFFIX = {ClientApi.OPENAI_CHAT: "/chat/completions", ClientApi.OPENAI_EMBEDDINGS: "/embeddings"}


class OpenAIToOpenAI:
    def __init__(self, api: ClientApi, backend: Backend, path: str | None = None,
                 read_usage: bool = False) -> None:
        self._path = path or join_path(backend.base_url, _SUFFIX[api])
        self._model = backend.model
        self._read_usage = read_usage
        self._parser = SseParser()

    def request(self, body: dict[str, Any], raw: bytes) -> UpstreamRequest:
        if body.get("model") == self._model:
            return UpstreamRequest(self._path, None)
        return UpstreamRequest(self._path, orjson.dumps({**body, "model": self._model}))

    def response_body_mode(self, status: int, headers: Mapping[str, str]) -> BodyMode:
        if not self._read_usage or not is_success(status):
            return "none"
        return "streamed" if is_event_stream(headers) else "buffered"

    def response_body(self, body: bytes) -> Translated:
        try:
            reply = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Translated(None)
        return Translated(None, _usage(reply))

    def response_chunk(self, chunk: bytes, end_of_stream: bool) -> Translated:
        usage = None
        if self._read_usage:
            for event in self._parser.feed(chunk, end_of_stream):
                usage = _usage(json_data(event)) or usage
        return Translated(None, usage)


def _usage(reply: Any) -> Usage | None:
    usage = reply.get("usage") if isinstance(reply, dict) else None
    return usage_from_openai(usage) if isinstance(usage, dict) else None

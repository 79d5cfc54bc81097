"""Anthropic Messages clients to Anthropic: the model is renamed, the bytes pass untouched.

The client's anthropic-beta header travels on unchanged. A body that names the backend's model
is not even read; the reply is, to learn the usage.
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
)
from ext_proc.translators.common import (
    reply_usage,
    same_schema_body_mode,
    usage_from_anthropic,
)
from ext_proc.translators.openai_anthropic import anthropic_headers
from ext_proc.translators.openai_anthropic_stream import AnthropicUsageTracker
from ext_proc.translators.paths import join_path
from ext_proc.translators.sse import SseParser, json_data


class AnthropicToAnthropic:
    def __init__(self, api: ClientApi, backend: Backend) -> None:
        self._backend = backend
        self._parser = SseParser()
        self._usage = AnthropicUsageTracker()

    def unchanged(self, request: ClientRequest) -> UpstreamRequest | None:
        if request.model != self._backend.model:
            return None
        return self._upstream(None)

    def request(self, body: dict[str, Any], raw: bytes) -> UpstreamRequest:
        if body.get("model") == self._backend.model:
            return self._upstream(None)
        return self._upstream(orjson.dumps({**body, "model": self._backend.model}))

    def _upstream(self, body: bytes | None) -> UpstreamRequest:
        return UpstreamRequest(join_path(self._backend.base_url, "/v1/messages"), body,
                               anthropic_headers(self._backend))

    def response_body_mode(self, status: int, headers: Mapping[str, str]) -> BodyMode:
        return same_schema_body_mode(status, headers)

    def response_body(self, body: bytes) -> Translated:
        return Translated(None, reply_usage(body, usage_from_anthropic))

    def response_chunk(self, chunk: bytes, end_of_stream: bool) -> Translated:
        seen = False
        for event in self._parser.feed(chunk, end_of_stream):
            if (data := json_data(event)) is not None:
                seen |= self._usage.see(data)
        return Translated(None, self._usage.usage if seen else None)

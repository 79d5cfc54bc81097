"""OpenAI-schema clients to OpenAI-compatible servers: the path and the model name change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ext_proc.contract import ClientApi
from ext_proc.translators.base import Backend, BodyMode, Translated, UpstreamRequest
from ext_proc.translators.common import is_event_stream, is_success
from ext_proc.translators.paths import join_path

_SUFFIX = {ClientApi.OPENAI_CHAT: "/chat/completions", ClientApi.OPENAI_EMBEDDINGS: "/embeddings"}


class OpenAIToOpenAI:
    def __init__(self, api: ClientApi, backend: Backend) -> None:
        self._path = join_path(backend.base_url, _SUFFIX[api])
        self._model = backend.model

    def request(self, body: dict[str, Any], raw: bytes) -> UpstreamRequest:
        if body.get("model") == self._model:
            return UpstreamRequest(self._path, None)
        return UpstreamRequest(self._path, orjson.dumps({**body, "model": self._model}))

    def response_body_mode(self, status: int, headers: Mapping[str, str]) -> BodyMode:
        # A stream is watched so that a cut one ends with an error event (stream_guard).
        return "streamed" if is_success(status) and is_event_stream(headers) else "none"

    def response_body(self, body: bytes) -> Translated:
        return Translated(None)

    def response_chunk(self, chunk: bytes, end_of_stream: bool) -> Translated:
        return Translated(None)

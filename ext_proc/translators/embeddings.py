"""OpenAI embeddings clients served by backends with their own embeddings schema.

The client side (inputs, dimensions, encoding_format, the reply and its errors) is here once;
each backend supplies its request and how to read vectors and usage from its reply. The
official OpenAI SDKs ask for base64 unless told otherwise, so both encodings are produced.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ext_proc.contract import ClientApi
from ext_proc.translators.base import (
    Backend,
    BodyMode,
    Translated,
    TranslationError,
    UpstreamRequest,
    Usage,
)
from ext_proc.translators.common import error_message, field, is_success, openai_error


@dataclass(frozen=True)
class EmbeddingsRequest:
    inputs: list[str]
    dimensions: int | None


class EmbeddingsBackend(Protocol):
    def request(self, request: EmbeddingsRequest) -> UpstreamRequest:
        ...

    def vectors(self, reply: dict[str, Any],
                headers: Mapping[str, str]) -> tuple[list[list[float]], Usage | None] | None:
        """The vectors in input order and the usage reported, or None if unreadable."""
        ...


def parse_request(body: dict[str, Any]) -> EmbeddingsRequest:
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise TranslationError("this provider takes 'input' as a string or a non-empty list of "
                               "strings (not token arrays)")
    dimensions = field(body, "dimensions", int)
    if dimensions is not None and dimensions < 1:
        raise TranslationError("'dimensions' must be at least 1")
    return EmbeddingsRequest(inputs, dimensions)


def encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI sends it
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


class OpenAIEmbeddings:
    def __init__(self, api: ClientApi, backend: Backend,
                 side: Callable[[Backend], EmbeddingsBackend]) -> None:
        self._side = side(backend)
        self._model = backend.model
        self._encoding = "float"
        self._status = 0
        self._headers: Mapping[str, str] = {}

    def request(self, body: dict[str, Any], raw: bytes) -> UpstreamRequest:
        encoding = field(body, "encoding_format", str) or "float"
        if encoding not in ("float", "base64"):
            raise TranslationError("'encoding_format' must be float or base64")
        self._encoding = encoding
        return self._side.request(parse_request(body))

    def response_body_mode(self, status: int, headers: Mapping[str, str]) -> BodyMode:
        self._status, self._headers = status, headers
        return "buffered"

    def response_body(self, body: bytes) -> Translated:
        if not is_success(self._status):
            return Translated(openai_error(self._status, error_message(body)))
        try:
            reply = orjson.loads(body)
        except orjson.JSONDecodeError:
            reply = None
        read = self._side.vectors(reply, self._headers) if isinstance(reply, dict) else None
        if read is None:
            return Translated(openai_error(502, "the provider returned an unreadable answer"))
        vectors, usage = read
        tokens = usage.input_tokens if usage else 0
        return Translated(orjson.dumps({
            "object": "list", "model": self._model,
            "data": [{"object": "embedding", "index": index,
                      "embedding": encode_vector(vector, self._encoding)}
                     for index, vector in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}), usage)

    def response_chunk(self, chunk: bytes, end_of_stream: bool) -> Translated:
        return Translated(None)


def floats(value: Any) -> list[float] | None:
    """A JSON list of numbers, or None."""
    if isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       for v in value):
        return [float(v) for v in value]
    return None


def embeddings_via(side: Callable[[Backend], EmbeddingsBackend]
                   ) -> Callable[[ClientApi, Backend], OpenAIEmbeddings]:
    def factory(api: ClientApi, backend: Backend) -> OpenAIEmbeddings:
        return OpenAIEmbeddings(api, backend, side)
    return factory

"""The one interface every (client API, backend schema) translator implements.

A translator lives for one attempt: Envoy may retry on another provider with another schema,
and each attempt gets a fresh translator for the backend it actually reaches. Streaming state
(partial SSE lines, event-stream frames) lives in the instance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, cast, runtime_checkable

from ext_proc.contract import (
    BODY_SIZE_KEY,
    DOWNGRADED_FROM_KEY,
    INCLUDE_USAGE_KEY,
    MODEL_KEY,
    STREAM_KEY,
    ClientApi,
)


@dataclass(frozen=True)
class Backend:
    """Where this attempt goes: the provider Envoy picked and the model it knows."""

    provider: str
    kind: str
    base_url: str
    model: str
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UpstreamRequest:
    """The request as the backend expects it. `body` None means: send the client's unchanged."""

    path: str
    body: bytes | None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientRequest:
    """The few fields of the client's body an attempt decides on. Envoy reads them before
    routing (request_fields.lua), so an attempt that forwards the body unchanged never reads
    it."""

    model: str
    stream: bool = False
    include_usage: bool = False  # OpenAI: stream_options.include_usage

    @classmethod
    def of_metadata(cls, metadata: Mapping[str, Any]) -> ClientRequest:
        """From what Envoy read before routing; a downgraded body still names the model the
        client asked for."""
        model = metadata.get(DOWNGRADED_FROM_KEY) or metadata.get(MODEL_KEY)
        return cls(model if isinstance(model, str) else "", metadata.get(STREAM_KEY) is True,
                   metadata.get(INCLUDE_USAGE_KEY) is True)

    @classmethod
    def of_body(cls, body: Mapping[str, Any]) -> ClientRequest:
        options = body.get("stream_options")
        model = body.get("model")
        return cls(model if isinstance(model, str) else "", body.get("stream") is True,
                   isinstance(options, dict) and options.get("include_usage") is True)


def body_size(metadata: Mapping[str, Any]) -> int | None:
    """The client body's length as Envoy recorded it, None when unknown (then only reading
    the body can restore it)."""
    size = str(metadata.get(BODY_SIZE_KEY, ""))
    return int(size) if size.isdigit() else None


@dataclass(frozen=True)
class Usage:
    """Token counts as the backend reported them. input_tokens excludes cache reads/writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class LocalReply:
    """An answer produced without calling any provider (the mock backend)."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    usage: Usage | None = None


@dataclass(frozen=True)
class Translated:
    """Bytes for the client (None: unchanged) and the usage learnt from them, if any. A stream
    reports only the answer's final usage, never a provider's running or placeholder counts:
    a stream cut before its final count reports none and is charged with an estimate."""

    body: bytes | None
    usage: Usage | None = None


BodyMode = Literal["none", "buffered", "streamed"]


class TranslationError(Exception):
    """The client's request cannot be served by this backend: a 400 in the client's schema."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Translator(Protocol):
    def request(self, body: dict[str, Any], raw: bytes) -> UpstreamRequest | LocalReply:
        """Rewrite the client's parsed request body for the backend."""
        ...

    def response_body_mode(self, status: int, headers: Mapping[str, str]) -> BodyMode:
        """How the worker must see the response body, decided from its status and headers."""
        ...

    def response_body(self, body: bytes) -> Translated:
        """A whole, non-streamed response body (success or error)."""
        ...

    def response_chunk(self, chunk: bytes, end_of_stream: bool) -> Translated:
        """The next piece of a streamed body, split at any byte."""
        ...


@runtime_checkable
class Passthrough(Protocol):
    """A translator that can forward some requests without reading their body. A body that
    names the model otherwise needs only its top-level `model` replaced by the backend's
    (Envoy's lane does that alone: control_plane/compiler/lua/lane.lua)."""

    def unchanged(self, request: ClientRequest) -> UpstreamRequest | None:
        """The upstream request when the client's body goes to the backend as it is (its
        `body` is None), or None when this request's body must be read."""
        ...


_PASSES_THROUGH: dict[type, bool] = {}


def as_passthrough(translator: object) -> Passthrough | None:
    """`translator` when it is a Passthrough, else None. Decided once per class: checking a
    runtime Protocol walks the class's attributes every time (~50 µs, on every attempt)."""
    cls = type(translator)
    passes = _PASSES_THROUGH.get(cls)
    if passes is None:
        passes = _PASSES_THROUGH[cls] = isinstance(translator, Passthrough)
    return cast(Passthrough, translator) if passes else None


class TranslatedInEnvoy(Protocol):
    """A translator whose mapping Envoy's lane also holds, in Lua, for the requests it knows
    all of (control_plane/compiler/lua/<envoy_translation>.lua); the lane leaves the others
    to this translator."""

    # The Lua translation's name. Its replies report their usage in the backend's schema
    # whatever the client asked; a stream it does not translate goes to this translator.
    envoy_translation: ClassVar[str]
    reply_api: ClassVar[ClientApi]  # the schema of the backend's replies, for their usage

    def envoy_upstream(self) -> UpstreamRequest:
        """Path and headers of every request the lane translates (`body` None: the lane's)."""
        ...


def as_translated_in_envoy(translator: object) -> TranslatedInEnvoy | None:
    return (cast(TranslatedInEnvoy, translator)
            if hasattr(type(translator), "envoy_translation") else None)


TranslatorFactory = Callable[[ClientApi, Backend], Translator]

"""The client side of translators to backends that speak neither OpenAI nor Anthropic.

Such a backend is written once, against Anthropic's Messages shape: an OpenAI chat request is
first rewritten as a Messages request (the same code as for an Anthropic backend), and the
backend's reply comes back as a Messages reply or as Messages stream events, which this module
renders in the schema the client called. So each new backend needs one request mapping, one
reply mapping and one stream mapping, whatever the client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson

from ext_proc.contract import ClientApi
from ext_proc.translators.base import Translated, TranslationError
from ext_proc.translators.common import (
    anthropic_error,
    field,
    openai_error,
    usage_from_anthropic,
)
from ext_proc.translators.openai_anthropic import openai_completion
from ext_proc.translators.openai_anthropic_request import to_anthropic
from ext_proc.translators.openai_anthropic_stream import (
    AnthropicToOpenAIStream,
    AnthropicUsageTracker,
)
from ext_proc.translators.sse import encode


class EventSink(Protocol):
    def feed_events(self, events: Iterable[dict[str, Any]]) -> Translated:
        """Messages stream events, rendered as the client's stream, with any usage seen."""
        ...


class ClientSide(Protocol):
    def messages_request(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        """The client's request as a Messages request; max_tokens absent if the client set
        none, so that the backend's own default applies."""
        ...

    def reply(self, message: dict[str, Any], model: str) -> Translated:
        """A Messages reply (with Anthropic usage) as the client's reply."""
        ...

    def error(self, status: int, message: str) -> bytes:
        ...

    def stream(self, model: str) -> EventSink:
        ...


class OpenAIChatClient:
    def __init__(self, created: int) -> None:
        self._created = created
        self._include_usage = False

    def messages_request(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        request = to_anthropic(body, model)
        if field(body, "max_completion_tokens", int) is None and field(
                body, "max_tokens", int) is None:
            del request["max_tokens"]  # to_anthropic's default is Anthropic's requirement only
        options = body.get("stream_options")
        self._include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return request

    def reply(self, message: dict[str, Any], model: str) -> Translated:
        return openai_completion(message, model, self._created)

    def error(self, status: int, message: str) -> bytes:
        return openai_error(status, message)

    def stream(self, model: str) -> EventSink:
        return AnthropicToOpenAIStream(model, self._created, self._include_usage)


class AnthropicMessagesClient:
    def messages_request(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        max_tokens = field(body, "max_tokens", int)
        if max_tokens is None or max_tokens < 1:
            raise TranslationError("'max_tokens' is required and must be at least 1")
        return {**body, "model": model}

    def reply(self, message: dict[str, Any], model: str) -> Translated:
        usage = message.get("usage")
        return Translated(orjson.dumps(message),
                          usage_from_anthropic(usage) if isinstance(usage, dict) else None)

    def error(self, status: int, message: str) -> bytes:
        return anthropic_error(status, message)

    def stream(self, model: str) -> EventSink:
        return AnthropicEvents()


class AnthropicEvents:
    """Messages events encoded as Anthropic's SSE, the usage read on the way."""

    def __init__(self) -> None:
        self._usage = AnthropicUsageTracker()

    def feed_events(self, events: Iterable[dict[str, Any]]) -> Translated:
        out: list[bytes] = []
        seen = False
        for data in events:
            seen |= self._usage.see(data)
            out.append(encode(data, str(data.get("type"))))
        return Translated(b"".join(out), self._usage.usage if seen else None)


def client_side(api: ClientApi, clock: Callable[[], float] = time.time) -> ClientSide:
    if api is ClientApi.ANTHROPIC_MESSAGES:
        return AnthropicMessagesClient()
    if api is ClientApi.OPENAI_CHAT:
        return OpenAIChatClient(int(clock()))
    raise TranslationError(f"{api.path} has no Messages-shaped translation", 400)

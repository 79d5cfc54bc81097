"""What the OpenAI and Anthropic translators share: input checks, usage, stop reasons, errors.

Each mapping lives here once so that the two directions cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ext_proc.errors import error_kind
from ext_proc.translators.base import BodyMode, TranslationError, Usage

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"

# Anthropic stop_reason -> OpenAI finish_reason, and back.
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "pause_turn": "stop", "refusal": "content_filter"}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}


def field(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...],
          where: str = "") -> Any:
    """`body[name]` when present and of the expected JSON type, else a 400; None if absent."""
    value = body.get(name)
    if value is None:
        return None
    # bool is an int in Python but not a number in JSON.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
        raise TranslationError(f"'{where}{name}' has the wrong type")
    return value


def objects(value: Any, where: str) -> list[dict[str, Any]]:
    """A list whose items must all be JSON objects."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise TranslationError(f"'{where}' must be a list of objects")
    return value


def member(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A nested object of a provider's reply, or {} when it is missing or not an object."""
    value = body.get(name)
    return value if isinstance(value, dict) else {}


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _count(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_anthropic(usage: Mapping[str, Any]) -> Usage:
    return Usage(input_tokens=_count(usage, "input_tokens"),
                 output_tokens=_count(usage, "output_tokens"),
                 cached_input_tokens=_count(usage, "cache_read_input_tokens"),
                 cache_creation_tokens=_count(usage, "cache_creation_input_tokens"))


def usage_from_openai(usage: Mapping[str, Any]) -> Usage:
    prompt = usage.get("prompt_tokens_details")
    completion = usage.get("completion_tokens_details")
    cached = _count(prompt, "cached_tokens") if isinstance(prompt, dict) else 0
    return Usage(input_tokens=max(_count(usage, "prompt_tokens") - cached, 0),
                 output_tokens=_count(usage, "completion_tokens"),
                 cached_input_tokens=cached,
                 reasoning_tokens=(_count(completion, "reasoning_tokens")
                                   if isinstance(completion, dict) else 0))


def openai_usage(usage: Usage) -> dict[str, Any]:
    """OpenAI counts cache reads and writes as prompt tokens; Anthropic does not."""
    prompt = usage.input_tokens + usage.cached_input_tokens + usage.cache_creation_tokens
    return {"prompt_tokens": prompt, "completion_tokens": usage.output_tokens,
            "total_tokens": prompt + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens}}


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cache_read_input_tokens": usage.cached_input_tokens,
            "cache_creation_input_tokens": usage.cache_creation_tokens}


def error_message(body: bytes) -> str:
    """The message of an error body in either schema, or its text when it has none."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip() or "the provider returned an error"
    if isinstance(parsed, list) and len(parsed) == 1:  # Vertex wraps its error in a list
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    # OpenAI, Anthropic and Google nest it in "error"; Bedrock puts it at the top.
    holder = error if isinstance(error, dict) else parsed if isinstance(parsed, dict) else {}
    message = holder.get("message", holder.get("Message"))
    return message if isinstance(message, str) else orjson.dumps(parsed).decode()


def openai_error(status: int, message: str) -> bytes:
    kind = error_kind(status)
    return orjson.dumps({"error": {"message": message, "type": kind.openai_type,
                                   "code": kind.openai_code}})


def anthropic_error(status: int, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": error_kind(status).anthropic_type,
                                                    "message": message}})


def is_success(status: int) -> bool:
    return 200 <= status < 300


def provider_events(chunk: bytes) -> int:
    """Events in a chunk of a provider's stream, about one output token each (for the estimate
    of a stream cut before its usage): SSE `data:` lines, or AWS event-stream messages, each of
    which carries an `:event-type` header (its name preceded by its length, 11)."""
    return chunk.count(b"data:") + chunk.count(b"\x0b:event-type")


def is_event_stream(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").startswith("text/event-stream")


def same_schema_body_mode(status: int, headers: Mapping[str, str]) -> BodyMode:
    """For a backend that answers in the client's schema: read a success for its usage; an
    error is already in the client's schema, and nothing was served."""
    if not is_success(status):
        return "none"
    return "streamed" if is_event_stream(headers) else "buffered"


def reply_usage(body: bytes, read: Callable[[Mapping[str, Any]], Usage]) -> Usage | None:
    """The `usage` object of a JSON reply, read by `read`; None if the reply has none."""
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    usage = reply.get("usage") if isinstance(reply, dict) else None
    return read(usage) if isinstance(usage, dict) else None

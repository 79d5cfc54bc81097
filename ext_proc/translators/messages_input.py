"""Reading a Messages request's content, for the backends written against that shape."""

from __future__ import annotations

from typing import Any

from ext_proc.translators.base import TranslationError
from ext_proc.translators.common import field, objects


def system_texts(system: Any) -> list[str]:
    """A Messages system prompt (a string or text blocks) as its texts."""
    if isinstance(system, str):
        return [system]
    blocks = objects(system, "system")
    if not all(b.get("type") == "text" and isinstance(b.get("text"), str) for b in blocks):
        raise TranslationError("'system' blocks must be text")
    return [b["text"] for b in blocks]


def content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """A Messages content value (a string or blocks) as blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return objects(content, where)


def image_source(block: dict[str, Any]) -> tuple[str, str]:
    """(media type, base64 data) of a Messages image block; URL images are refused."""
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        media, data = source.get("media_type"), source.get("data")
        if isinstance(media, str) and isinstance(data, str):
            return media, data
    raise TranslationError("this provider takes images as base64 data only, not URLs")


# Sampling fields of a Messages request: (client name, accepted types).
_SAMPLING: dict[str, type | tuple[type, ...]] = {"temperature": (int, float),
                                                "top_p": (int, float), "top_k": int}


def sampling_settings(body: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The request's output limit, sampling and stop sequences under the backend's names
    (`names` maps max_tokens, temperature, top_p, top_k, stop_sequences to them; a field the
    backend has no name for is dropped), validated as every backend needs them."""
    settings: dict[str, Any] = {}
    if (max_tokens := field(body, "max_tokens", int)) is not None:
        if max_tokens < 1:
            raise TranslationError("'max_tokens' must be at least 1")
        settings[names["max_tokens"]] = max_tokens
    for name, kind in _SAMPLING.items():
        if name in names and (value := field(body, name, kind)) is not None:
            settings[names[name]] = value
    if stop := field(body, "stop_sequences", list):
        if not all(isinstance(s, str) for s in stop):
            raise TranslationError("'stop_sequences' must be a list of strings")
        settings[names["stop_sequences"]] = stop
    return settings

"""Reading a Messages request's content, for the backends written against that shape."""

from __future__ import annotations

from typing import Any

from ext_proc.translators.base import TranslationError
from ext_proc.translators.common import objects


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

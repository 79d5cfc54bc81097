"""What the Gemini translators share: paths, stop reasons, usage and call ids."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ext_proc.translators.base import Backend, Usage
from ext_proc.translators.paths import join_path

# finishReason -> Messages stop_reason; anything not listed ends the turn normally.
STOP_REASONS = {"MAX_TOKENS": "max_tokens", "SAFETY": "refusal", "RECITATION": "refusal",
                "BLOCKLIST": "refusal", "PROHIBITED_CONTENT": "refusal", "SPII": "refusal",
                "IMAGE_SAFETY": "refusal", "LANGUAGE": "refusal"}


def model_path(backend: Backend, method: str) -> str:
    """The path of a model method on the Gemini API, or on Vertex AI when the backend is."""
    if backend.kind == "vertex":
        options = backend.options
        prefix = (f"/v1/projects/{options.get('project', '')}/locations/"
                  f"{options.get('location', '')}/publishers/google")
    else:
        prefix = "/v1beta"
    return join_path(backend.base_url, f"{prefix}/models/{backend.model}:{method}")


def usage_from_gemini(usage: Mapping[str, Any]) -> Usage:
    """promptTokenCount includes the cached tokens; thoughts are billed as output."""
    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    cached, thoughts = count("cachedContentTokenCount"), count("thoughtsTokenCount")
    return Usage(input_tokens=max(count("promptTokenCount") - cached, 0),
                 output_tokens=count("candidatesTokenCount") + thoughts,
                 cached_input_tokens=cached, reasoning_tokens=thoughts)


def stop_reason(finish: Any, called_tools: bool) -> str:
    if called_tools:
        return "tool_use"
    return STOP_REASONS.get(str(finish), "end_turn")


def call_id(response_id: str, index: int) -> str:
    """Gemini calls carry no id; the client needs one to answer them."""
    return f"call_{response_id or 'gemini'}_{index}"

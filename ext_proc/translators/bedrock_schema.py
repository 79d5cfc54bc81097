"""What the Bedrock translators share: paths, stop reasons and usage of Bedrock's runtime API.

The path carries the model id, percent-encoded: Bedrock ids contain ':' and the SigV4
signature (credentials.py) covers the path exactly as it is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ext_proc.translators.base import Backend, Usage
from ext_proc.translators.paths import join_path

EVENT_STREAM = "application/vnd.amazon.eventstream"
REQUEST_ID_HEADER = "x-amzn-requestid"

# Converse stopReason -> Messages stop_reason; the shared names map to themselves.
STOP_REASONS = {"end_turn": "end_turn", "tool_use": "tool_use", "max_tokens": "max_tokens",
                "stop_sequence": "stop_sequence", "guardrail_intervened": "refusal",
                "content_filtered": "refusal", "model_context_window_exceeded": "max_tokens"}


def model_path(backend: Backend, action: str) -> str:
    return join_path(backend.base_url, f"/model/{quote(backend.model, safe='')}/{action}")


def usage_from_bedrock(usage: Mapping[str, Any]) -> Usage:
    """Bedrock, like Anthropic, counts cache reads and writes apart from inputTokens."""
    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return Usage(input_tokens=count("inputTokens"), output_tokens=count("outputTokens"),
                 cached_input_tokens=count("cacheReadInputTokens"),
                 cache_creation_tokens=count("cacheWriteInputTokens"))

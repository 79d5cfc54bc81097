"""Any JSON object a client sends either translates or is refused with TranslationError."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ext_proc.contract import ClientApi
from ext_proc.translators.base import Backend, LocalReply, TranslationError, Translator
from ext_proc.translators.registry import TRANSLATORS

# orjson, which parses client bodies, refuses integers beyond 64 bits: so do these inputs.
SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)

KEYS = ["model", "messages", "system", "max_tokens", "max_completion_tokens", "stream",
        "stream_options", "tools", "tool_choice", "stop", "stop_sequences", "temperature",
        "top_p", "n", "user", "metadata", "parallel_tool_calls", "input", "dimensions"]
ROLES = st.sampled_from(["user", "assistant", "system", "developer", "tool", "function"])
PART_TYPES = st.sampled_from(["text", "image_url", "image", "tool_use", "tool_result",
                              "thinking", "input_audio"])
PART = st.fixed_dictionaries({"type": PART_TYPES}, optional={
    "text": JSON, "image_url": JSON, "source": JSON, "id": JSON, "name": JSON, "input": JSON,
    "tool_use_id": JSON, "content": JSON})
TEXT_PART = st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=8)})
CONTENT = (st.text(max_size=8) | st.lists(TEXT_PART, max_size=2) | st.lists(PART, max_size=3)
           | JSON)
# Mostly well-formed turns, so that fuzzing reaches the deep mappings and not just the checks.
MESSAGE = st.fixed_dictionaries({"role": ROLES, "content": CONTENT}, optional={
    "tool_calls": JSON | st.lists(st.fixed_dictionaries(
        {"id": st.text(max_size=4), "function": st.fixed_dictionaries(
            {"name": JSON, "arguments": st.text(max_size=12) | JSON})}), max_size=2),
    "tool_call_id": JSON})
PLAUSIBLE = st.fixed_dictionaries({
    "messages": st.lists(MESSAGE, min_size=1, max_size=4),
    "max_tokens": st.integers(1, 10**6) | JSON,
}, optional={key: JSON for key in KEYS if key not in ("messages", "max_tokens")})
BODIES = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), JSON, max_size=6)

PAIRS = sorted(TRANSLATORS, key=str)


def translate(pair: tuple[ClientApi, str], body: dict[str, Any]) -> None:
    api, kind = pair
    translator: Translator = TRANSLATORS[pair](
        api, Backend("p", kind, "https://provider.example/v1", "target-model"))
    raw = orjson.dumps(body)
    refused: TranslationError | None
    try:
        result = translator.request(body, raw)
    except TranslationError as exc:
        refused = exc
    else:
        refused = None
    if refused is not None:
        assert 400 <= refused.status < 500
    elif isinstance(result, LocalReply):
        assert result.body
    elif result.body is not None:
        assert isinstance(orjson.loads(result.body), dict)


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{api.value}-{kind}" for api, kind in PAIRS])
@settings(max_examples=300, deadline=None)
@given(body=BODIES | PLAUSIBLE)
def test_request_translates_or_refuses(pair: tuple[ClientApi, str], body: dict[str, Any]) -> None:
    translate(pair, body)

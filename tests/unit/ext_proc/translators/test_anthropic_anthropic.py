from __future__ import annotations

from pathlib import Path

import pytest

from ext_proc.contract import ClientApi
from ext_proc.translators.anthropic_anthropic import AnthropicToAnthropic
from ext_proc.translators.base import Backend, Usage
from tests.unit.ext_proc.translators import golden as g

GOLDEN = g.FIXTURES / "golden" / "anthropic_anthropic"
BACKEND = Backend("anthropic", "anthropic", "https://api.anthropic.com", "claude-sonnet-4-5",
                  {"version": "2023-06-01"})


def make() -> AnthropicToAnthropic:
    return AnthropicToAnthropic(ClientApi.ANTHROPIC_MESSAGES, BACKEND)


REQUESTS = g.cases("anthropic", "requests")
RESPONSES = g.cases("anthropic", "responses")
STREAMS = g.cases("anthropic", "streams")


@pytest.mark.parametrize("fixture", REQUESTS, ids=g.ids(REQUESTS))
def test_request(fixture: Path) -> None:
    g.check_request(make, fixture, GOLDEN)


def test_request_unchanged_when_the_model_matches() -> None:
    result = make().request({"model": "claude-sonnet-4-5", "max_tokens": 1, "messages": []}, b"")
    assert result.body is None


@pytest.mark.parametrize("fixture", RESPONSES, ids=g.ids(RESPONSES))
def test_response(fixture: Path) -> None:
    g.check_response(make, fixture, GOLDEN)


@pytest.mark.parametrize("fixture", STREAMS, ids=g.ids(STREAMS))
def test_stream_passes_bytes_and_reads_usage(fixture: Path) -> None:
    data = fixture.read_bytes()
    body, usage = g.run_stream(make, [data])
    assert body == data
    g.assert_golden(GOLDEN / f"stream-{fixture.stem}.usage.json", g.pretty(g.usage_json(usage)))


@pytest.mark.parametrize("fixture", STREAMS, ids=g.ids(STREAMS))
def test_stream_split_anywhere(fixture: Path) -> None:
    g.check_every_split(make, fixture.read_bytes())


def test_errors_pass_untouched() -> None:
    assert make().response_body_mode(529, g.JSON_HEADERS) == "none"


def test_message_delta_keeps_earlier_counts() -> None:
    data = (g.FIXTURES / "anthropic/streams/text.sse").read_bytes()
    _, usage = g.run_stream(make, [data])
    assert usage == Usage(input_tokens=25, output_tokens=15, cached_input_tokens=1024)

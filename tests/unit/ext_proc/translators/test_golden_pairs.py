"""Golden cases of every translating pair: requests, responses, errors and streams, the
streams also split at every byte. One table; each pair's own module keeps what is particular
to it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.fakes.eventstream import from_jsonl
from tests.unit.ext_proc.translators import golden as g
from tests.unit.ext_proc.translators import test_bedrock, test_gemini
from tests.unit.ext_proc.translators.test_anthropic_openai import make as anthropic_openai
from tests.unit.ext_proc.translators.test_openai_anthropic import make as openai_anthropic


def _bytes(fixture: Path) -> bytes:
    return fixture.read_bytes()


def _event_stream(fixture: Path) -> bytes:
    return from_jsonl(fixture.read_text())


class Pair(NamedTuple):
    name: str
    make: g.Factory
    client: str
    backend: str
    # The stream fixture as the backend sends it, and the headers it comes with.
    wire: Callable[[Path], bytes] = _bytes
    stream_headers: Mapping[str, str] = g.SSE_HEADERS


PAIRS = [
    Pair("openai_anthropic", openai_anthropic, "openai", "anthropic"),
    Pair("anthropic_openai", anthropic_openai, "anthropic", "openai"),
    Pair("openai_bedrock", test_bedrock.make_openai, "openai", "bedrock", _event_stream,
         test_bedrock.EVENT_STREAM),
    Pair("anthropic_bedrock", test_bedrock.make_anthropic, "anthropic", "bedrock",
         _event_stream, test_bedrock.EVENT_STREAM),
    Pair("openai_gemini", test_gemini.make_openai, "openai", "gemini"),
    Pair("anthropic_gemini", test_gemini.make_anthropic, "anthropic", "gemini"),
]


def _cases(schema_of: str, kind: str) -> list[tuple[Pair, Path]]:
    return [(pair, fixture) for pair in PAIRS
            for fixture in g.cases(getattr(pair, schema_of), kind)]


def _ids(cases: list[tuple[Pair, Path]]) -> list[str]:
    return [f"{pair.name}-{fixture.stem}" for pair, fixture in cases]


REQUESTS = _cases("client", "requests")
RESPONSES = _cases("backend", "responses")
ERRORS = _cases("backend", "errors")
STREAMS = _cases("backend", "streams")


def _golden(pair: Pair) -> Path:
    return g.FIXTURES / "golden" / pair.name


@pytest.mark.parametrize(("pair", "fixture"), REQUESTS, ids=_ids(REQUESTS))
def test_request(pair: Pair, fixture: Path) -> None:
    g.check_request(pair.make, fixture, _golden(pair))


@pytest.mark.parametrize(("pair", "fixture"), RESPONSES, ids=_ids(RESPONSES))
def test_response(pair: Pair, fixture: Path) -> None:
    g.check_response(pair.make, fixture, _golden(pair))


@pytest.mark.parametrize(("pair", "fixture"), ERRORS, ids=_ids(ERRORS))
def test_error(pair: Pair, fixture: Path) -> None:
    g.check_response(pair.make, fixture, _golden(pair), g.error_status(fixture))


@pytest.mark.parametrize(("pair", "fixture"), STREAMS, ids=_ids(STREAMS))
def test_stream(pair: Pair, fixture: Path) -> None:
    g.check_stream(pair.make, fixture, _golden(pair), pair.wire(fixture), pair.stream_headers)


@pytest.mark.parametrize(("pair", "fixture"), STREAMS, ids=_ids(STREAMS))
def test_stream_split_anywhere(pair: Pair, fixture: Path) -> None:
    g.check_every_split(pair.make, pair.wire(fixture), pair.stream_headers)

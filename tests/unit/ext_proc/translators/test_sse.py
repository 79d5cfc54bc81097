from __future__ import annotations

import pytest

from ext_proc.translators.sse import Event, SseParser, encode


@pytest.mark.parametrize(("stream", "expected"), [
    (b"data: a\n\n", [Event("message", "a")]),
    (b"event: x\ndata: a\ndata: b\n\n", [Event("x", "a\nb")]),
    (b"event: x\r\ndata:a\r\n\r\n", [Event("x", "a")]),
    (b"data: a\r\rdata: b\r\r", [Event("message", "a"), Event("message", "b")]),
    (b": keep-alive\n\ndata: a\n\n", [Event("message", "a")]),
    (b"data: no blank line at the end", [Event("message", "no blank line at the end")]),
    (b"id: 7\nretry: 10\n\n", []),
])
def test_parse(stream: bytes, expected: list[Event]) -> None:
    assert SseParser().feed(stream, end_of_stream=True) == expected


def test_a_line_ends_at_its_cr_and_an_lf_after_it_in_the_next_chunk_is_the_same_end() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n\r") == [Event("message", "a")]  # no wait for a byte that may not come
    assert parser.feed(b"\n") == []  # the rest of that CRLF
    assert parser.feed(b"data: b\r") == []
    assert parser.feed(b"") == []  # an empty chunk changes nothing
    assert parser.feed(b"\n\n") == [Event("message", "b")]


def test_encode() -> None:
    assert encode({"a": 1}, "x") == b'event: x\ndata: {"a":1}\n\n'
    assert encode(b"[DONE]") == b"data: [DONE]\n\n"

"""The stream guard: a stream that ends without its terminator ends with an error event."""

from __future__ import annotations

import orjson
import pytest

from ext_proc.contract import ClientApi
from ext_proc.stream_guard import StreamGuard
from ext_proc.translators.sse import SseParser

OPENAI_CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
ANTHROPIC_DELTA = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                   b'"delta":{"type":"text_delta","text":"Hi"}}\n\n')


def _feed(guard: StreamGuard, chunks: list[bytes]) -> bytes:
    """Every chunk as the client receives it, the last one marked end_of_stream."""
    out = b""
    for index, chunk in enumerate(chunks):
        out += chunk + guard.watch(chunk, index == len(chunks) - 1)
    return out


@pytest.mark.parametrize(("api", "chunks"), [
    (ClientApi.OPENAI_CHAT, [OPENAI_CHUNK, b"data: [DONE]\n\n", b""]),
    (ClientApi.OPENAI_CHAT, [OPENAI_CHUNK, b"data: [DO", b"NE]\n\n"]),  # split terminator
    (ClientApi.OPENAI_CHAT, [OPENAI_CHUNK, b'data: {"error": {"message": "x"}}\n\n']),
    (ClientApi.ANTHROPIC_MESSAGES, [ANTHROPIC_DELTA,
                                    b'event: message_stop\ndata: {"type":"message_stop"}\n\n']),
    (ClientApi.ANTHROPIC_MESSAGES, [ANTHROPIC_DELTA, b"event: err", b"or\ndata: {}\n\n"]),
])
def test_a_complete_stream_is_left_alone(api: ClientApi, chunks: list[bytes]) -> None:
    guard = StreamGuard(api)
    assert _feed(guard, chunks) == b"".join(chunks)
    assert guard.finished


def test_an_openai_stream_cut_short_ends_with_an_error_chunk_and_no_done() -> None:
    out = _feed(StreamGuard(ClientApi.OPENAI_CHAT), [OPENAI_CHUNK, OPENAI_CHUNK, b""])
    events = SseParser().feed(out, end_of_stream=True)
    assert [e.data for e in events[:2]] == [OPENAI_CHUNK[6:-2].decode()] * 2
    error = orjson.loads(events[-1].data)["error"]
    assert error["type"] == "server_error"
    assert "ended before the answer was complete" in error["message"]
    assert b"[DONE]" not in out


def test_an_anthropic_stream_cut_short_ends_with_an_error_event_and_no_message_stop() -> None:
    out = _feed(StreamGuard(ClientApi.ANTHROPIC_MESSAGES), [ANTHROPIC_DELTA])
    last = SseParser().feed(out, end_of_stream=True)[-1]
    assert last.event == "error"
    assert orjson.loads(last.data) == {"type": "error", "error": {
        "type": "api_error",
        "message": "The provider's stream ended before the answer was complete."}}
    assert b"message_stop" not in out


@pytest.mark.parametrize("cut", [b'data: {"choices": [', b'data: {"choices": []}\n'])
def test_an_event_left_open_is_closed_before_the_error(cut: bytes) -> None:
    out = _feed(StreamGuard(ClientApi.OPENAI_CHAT), [OPENAI_CHUNK, cut])
    events = SseParser().feed(out)  # no end_of_stream: the error must be complete by itself
    assert "error" in orjson.loads(events[-1].data)
    assert len(events) == 3


def test_nothing_is_added_before_the_end() -> None:
    guard = StreamGuard(ClientApi.OPENAI_CHAT)
    assert guard.watch(OPENAI_CHUNK, end_of_stream=False) == b""
    assert not guard.finished

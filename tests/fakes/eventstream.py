"""An encoder of AWS event stream frames, for the Bedrock fake and the stream fixtures.

Frame: total length (4 bytes), headers length (4), CRC32 of those 8 bytes (4), headers, payload,
CRC32 of everything before it (4), all big-endian; each header is a 1-byte name length, the
name, a value type (7: string), a 2-byte value length and the value.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson

_STRING = 7


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = b"".join(
        struct.pack(">B", len(name.encode())) + name.encode()
        + struct.pack(">BH", _STRING, len(value.encode())) + value.encode()
        for name, value in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    return frame({":event-type": kind, ":content-type": "application/json",
                  ":message-type": "event"}, orjson.dumps(payload))


def exception(kind: str, payload: dict[str, Any]) -> bytes:
    return frame({":exception-type": kind, ":content-type": "application/json",
                  ":message-type": "exception"}, orjson.dumps(payload))


def from_jsonl(text: str) -> bytes:
    """A stream fixture: one {"event"|"exception": name, "payload": {...}} per line."""
    out = []
    for line in text.splitlines():
        if line.strip():
            item = orjson.loads(line)
            make = exception if "exception" in item else event
            out.append(make(item.get("exception") or item["event"], item["payload"]))
    return b"".join(out)

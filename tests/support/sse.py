"""Reading a stream's server-sent events in tests."""

from __future__ import annotations

from typing import Any

import orjson


def named_events(body: bytes) -> list[tuple[str, Any]]:
    """(event name, data as JSON) of each event of a stream written as Anthropic writes
    them: an `event:` line, then one `data:` line."""
    events = []
    for event in body.decode().split("\n\n"):
        if event:
            head, data = event.split("\n")
            events.append((head.removeprefix("event: "), orjson.loads(data.removeprefix(
                "data: "))))
    return events

"""The usage of replies Envoy forwards alone, read by Envoy (control_plane/compiler/lua/
sse_usage.lua) for the access log that carries it to the workers; and the usage event taken
out of the OpenAI streams whose usage the lane asked for on the client's behalf.

Lua rather than Envoy's sse_to_metadata and json_to_metadata, which parse the whole of what
they read: the first every event of a stream (~100 µs of Envoy's CPU for the benchmark's
15-event stream, measured with `bench filters`), the second a whole reply (~140,000
instructions a request, a fifth of all Envoy executes for a request forwarded alone:
callgrind). The readers look for the usage object alone and parse that."""

from __future__ import annotations

from typing import Any

from control_plane.compiler.direct import only_marked
from control_plane.compiler.lua_source import script
from control_plane.compiler.translations import LUA, stream_usage_source
from control_plane.xds.resources import any_of
from ext_proc.contract import TRANSLATED_HEADER, USAGE_ADDED_HEADER


def _lua(name: str, script_name: str) -> dict[str, Any]:
    return {"name": name, "typed_config": any_of(LUA, {
        "default_source_code": {"inline_string": "\n".join((
            stream_usage_source(), script(script_name)))},
        "stat_prefix": name.removeprefix("switchboard.")})}


def reply_usage_filter() -> dict[str, Any]:
    """Reads the usage of a reply forwarded alone: a stream's (the last event naming a field
    wins) or a whole JSON reply's top-level usage object. Skipped by the others: the worker
    reads theirs, a translated reply's translation reports its usage itself, and so does the
    added usage event's remover, which reads the same events (one scan of the stream, not
    two)."""
    return only_marked(_lua("switchboard.reply_usage", "reply_usage.lua"),
                       unless=(TRANSLATED_HEADER, USAGE_ADDED_HEADER))


def added_usage_filter() -> dict[str, Any]:
    """Reads the usage of the OpenAI streams the lane asked for it (LaneRoute's
    `adds_usage`) and takes its event out: skipped for every other request, so only those
    pay for it."""
    return only_marked(_lua("switchboard.added_usage", "added_usage.lua"), USAGE_ADDED_HEADER)

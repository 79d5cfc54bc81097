"""The reader of a request's body (control_plane/compiler/lua/request_fields.lua): the model,
whether it streams and asks for its usage, its output limits, its size, or why the routes
refuse it, written where the routes, the workers and the access logs read them. The lane
reads the body with it (admission: envoy); otherwise it is a Lua filter of its own. Lua,
not json_to_metadata, which builds a tree of the whole body: ~55,000-90,000 fewer of Envoy's
instructions a request (docs/benchmarks.md)."""

from __future__ import annotations

from typing import Any

from control_plane.compiler.lua_source import script, to_lua
from control_plane.compiler.translations import LUA
from control_plane.xds.resources import any_of
from ext_proc.contract import (
    BODY_ERROR_KEY,
    BODY_SIZE_KEY,
    INCLUDE_USAGE_KEY,
    METADATA_NAMESPACE,
    MODEL_KEY,
    ROUTE_MODEL_HEADER,
    STREAM_KEY,
)

READER_FILTER_NAME = "switchboard.request"
# Far above any policy model's name (200 characters): a longer value names no model, and is
# kept out of the metadata, the logs and the route's header.
MAX_MODEL_BYTES = 1024


def request_reader_source() -> str:
    """`REQUEST` and the reader, after json_text.lua."""
    names = {"namespace": METADATA_NAMESPACE, "model": MODEL_KEY, "body_size": BODY_SIZE_KEY,
             "body_error": BODY_ERROR_KEY, "route_model_header": ROUTE_MODEL_HEADER,
             "max_model_bytes": MAX_MODEL_BYTES,
             # The reader's fields written as they are, by metadata key.
             "kept": {"stream": STREAM_KEY, "include_usage": INCLUDE_USAGE_KEY,
                      "max_tokens": "max_tokens",
                      "max_completion_tokens": "max_completion_tokens"}}
    return "\n".join((f"local REQUEST = {to_lua(names)}", script("request_fields.lua")))


def request_reader_filter() -> dict[str, Any]:
    """The reader on its own, when no lane reads the body."""
    source = "\n".join((script("json_text.lua"), request_reader_source(),
                        "function envoy_on_request(handle)\n  read_request(handle)\nend\n"))
    return {"name": READER_FILTER_NAME, "typed_config": any_of(LUA, {
        "default_source_code": {"inline_string": source}, "stat_prefix": "request",
        "clear_route_cache": False})}  # the reader clears it itself, once

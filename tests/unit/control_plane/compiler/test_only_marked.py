"""A filter skipped by a match on the request's headers must see the request: a filter of
replies alone never completes the match, and runs on every reply."""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.compiler.direct import only_marked
from control_plane.compiler.reply_usage import added_usage_filter, reply_usage_filter
from control_plane.compiler.translations import translated_reply_filter


def wrapped_type(http_filter: dict[str, Any]) -> str:
    return str(http_filter["typed_config"]["extension_config"]["typed_config"]["@type"])


def test_the_filters_skipped_by_a_mark_see_the_request() -> None:
    assert {wrapped_type(f) for f in (reply_usage_filter(), added_usage_filter(),
                                      translated_reply_filter())} == {
        "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"}


def test_a_filter_of_replies_alone_cannot_be_skipped_by_a_mark() -> None:
    sse = {"name": "switchboard.sse_usage", "typed_config": {
        "@type": "type.googleapis.com/xds.type.v3.TypedStruct",
        "type_url": "type.googleapis.com/"
                    "envoy.extensions.filters.http.sse_to_metadata.v3.SseToMetadata",
        "value": {}}}
    with pytest.raises(ValueError, match="cannot skip a filter that does not see the request"):
        only_marked(sse)


@pytest.mark.parametrize("kind", [
    "header_mutation.v3.HeaderMutation", "ext_proc.v3.ExternalProcessor", "composite.v3.Composite"])
def test_filters_of_requests_and_replies_can_be_skipped_by_a_mark(kind: str) -> None:
    http_filter = {"name": "f", "typed_config": {
        "@type": f"type.googleapis.com/envoy.extensions.filters.http.{kind}"}}
    assert wrapped_type(only_marked(http_filter)) == http_filter["typed_config"]["@type"]

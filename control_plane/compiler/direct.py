"""The Envoy side of requests forwarded alone (ext_proc/direct.py): admission marks them with
a header, their attempts skip the upstream worker, and the listener reads their reply's usage
for the access log."""

from __future__ import annotations

from typing import Any

from control_plane.policy import Policy
from control_plane.xds.resources import any_of
from ext_proc.contract import (
    DIRECT_HEADER,
    INTERNAL_HEADER_PREFIX,
)


def forwards_directly(policy: Policy) -> bool:
    """Whether admission may hand requests to Envoy to forward alone."""
    return not policy.gateway.reply_cost


_SKIP = {"name": "skip", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter"}}
_MATCHING = "envoy.extensions.common.matching.v3.ExtensionWithMatcher"


def _marked(marker: str) -> dict[str, Any]:
    return {"single_predicate": {
        "input": {"name": "marked", "typed_config": {
            "@type": "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput",
            "header_name": marker}},
        "value_match": {"exact": "1"}}}


# The filters a match on the request's headers can skip: those that see the request. A
# filter of replies alone (sse_to_metadata) never sees it, so its match never completes and
# the filter runs on every reply: measured, an `sse_to_metadata` "skipped" for translated
# streams cost them ~150 µs of Envoy's CPU each.
_SEE_REQUESTS = frozenset(
    f"type.googleapis.com/envoy.extensions.filters.http.{name}" for name in (
        "lua.v3.Lua", "header_mutation.v3.HeaderMutation",
        "ext_proc.v3.ExternalProcessor", "composite.v3.Composite"))


def only_marked(http_filter: dict[str, Any], marker: str = DIRECT_HEADER,
                unless: tuple[str, ...] = ()) -> dict[str, Any]:
    """The filter, skipped for every request without `marker` (by default: those admission
    did not mark as forwarded alone), and for those marked with any of `unless` too. Envoy
    evaluates the match when the request's headers reach the filter, after admission's
    header mutation."""
    return _skipped(http_filter, [{"not_matcher": _marked(marker)},
                                  *(_marked(other) for other in unless)])


def skipped_if_marked(http_filter: dict[str, Any], marker: str = DIRECT_HEADER
                      ) -> dict[str, Any]:
    """The filter, skipped for the requests marked with `marker` (by default: those
    admission marked as forwarded alone)."""
    return _skipped(http_filter, [_marked(marker)])


def _skipped(http_filter: dict[str, Any], predicates: list[dict[str, Any]]) -> dict[str, Any]:
    if http_filter["typed_config"]["@type"] not in _SEE_REQUESTS:
        raise ValueError(f"{http_filter['name']}: a match on the request cannot skip a filter "
                         "that does not see the request")
    return {"name": http_filter["name"], "typed_config": any_of(_MATCHING, {
        "extension_config": http_filter,
        "xds_matcher": {"matcher_list": {"matchers": [
            {"predicate": predicate, "on_match": {"action": _SKIP}}
            for predicate in predicates]}},
    })}


def unless_marked(http_filter: dict[str, Any], *markers: str) -> dict[str, Any]:
    """The filter, for the requests that carry none of `markers` (such as DIRECT_HEADER: those
    admission marked as forwarded alone). Envoy builds a skipped filter anyway, and an ext_proc
    filter costs ~10 µs to build downstream and ~30 µs upstream even when it never runs
    (measured); the composite filter builds the one it delegates to only when its matcher
    selects it, so a request forwarded alone pays ~5 µs."""
    build = {"name": "build", "typed_config": any_of(
        "envoy.extensions.filters.http.composite.v3.ExecuteFilterAction",
        {"typed_config": http_filter})}
    unmarked = [{"not_matcher": _marked(marker)} for marker in markers]
    predicate = (unmarked[0] if len(unmarked) == 1
                 else {"and_matcher": {"predicate": unmarked}})
    return {"name": http_filter["name"], "typed_config": any_of(_MATCHING, {
        "extension_config": {"name": "composite", "typed_config": any_of(
            "envoy.extensions.filters.http.composite.v3.Composite", {})},
        "xds_matcher": {"matcher_list": {"matchers": [
            {"predicate": predicate, "on_match": {"action": build}}]}},
    })}


def strip_internal_headers() -> dict[str, Any]:
    """What the worker does for the attempts it sees: no internal header leaves for a
    provider (a key's hash, a team's name)."""
    return {"name": "switchboard.strip_internal", "typed_config": any_of(
        "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
        {"mutations": {"request_mutations": [
            {"remove_on_match": {"key_matcher": {"prefix": INTERNAL_HEADER_PREFIX}}}]}})}



"""The filters each attempt runs upstream: name the backend Envoy picked, then let the worker
rewrite the request for it."""

from __future__ import annotations

from enum import Enum
from typing import Any

from control_plane.compiler.direct import (
    skipped_if_marked,
    strip_internal_headers,
    unless_marked,
)
from control_plane.compiler.settings import (
    EXT_PROC_CLUSTER,
    ROUTE_TARGET_MODEL_KEY,
    GatewaySettings,
)
from control_plane.xds.resources import any_of
from ext_proc.contract import (
    BUDGET_WARNING_HEADER,
    BUDGET_WARNING_METADATA_KEY,
    CLIENT_PATH_HEADER,
    CLIENT_PATH_KEY,
    DIRECT_HEADER,
    METADATA_NAMESPACE,
    PROVIDER_HEADER,
    REQUESTED_MODEL_HEADER,
    RESPONSE_CODE_ATTRIBUTE,
    RESPONSE_MODEL_HEADER,
    RESPONSE_PROVIDER_HEADER,
    SITE_METADATA_KEY,
    TARGET_MODEL_HEADER,
    UPSTREAM_SITE,
)


class TargetModelSource(Enum):
    """Where an attempt learns the provider's name for the model."""

    # A cluster of one model: each endpoint (target) names its model.
    ENDPOINT = f"%UPSTREAM_METADATA({METADATA_NAMESPACE}:model)%"
    # A cluster shared by models of one provider: the model's route names it.
    ROUTE = f"%METADATA(ROUTE:{METADATA_NAMESPACE}:{ROUTE_TARGET_MODEL_KEY})%"


def upstream_filters(settings: GatewaySettings, target_model: TargetModelSource,
                     direct: bool = False) -> list[dict[str, Any]]:
    """Set on every attempt, not once per request: the worker removes every internal header
    from the one header map that all attempts of a request share. With `direct`, an attempt
    of a request that admission marked as forwarded alone skips the worker, and Envoy
    removes the internal headers itself (ext_proc/direct.py)."""
    def header(key: str, value: str) -> dict[str, Any]:
        return {"append": {"header": {"key": key, "value": value},
                           "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}

    provider = f"%UPSTREAM_METADATA({METADATA_NAMESPACE}:provider)%"
    client_path = f"%DYNAMIC_METADATA({METADATA_NAMESPACE}:{CLIENT_PATH_KEY})%"
    budget_warning = f"%DYNAMIC_METADATA({METADATA_NAMESPACE}:{BUDGET_WARNING_METADATA_KEY})%"
    mutation = {"mutations": {
        "request_mutations": [
            header(PROVIDER_HEADER, provider),
            header(TARGET_MODEL_HEADER, target_model.value),
            header(CLIENT_PATH_HEADER, client_path),
            header(REQUESTED_MODEL_HEADER, f"%DYNAMIC_METADATA({METADATA_NAMESPACE}:model)%"),
            # For the worker's local replies, which the response mutations below do not reach.
            header(BUDGET_WARNING_HEADER, budget_warning),
        ],
        "response_mutations": [
            header(RESPONSE_PROVIDER_HEADER, provider),
            header(RESPONSE_MODEL_HEADER, target_model.value),
            # Empty (so not added) unless the router-level call found a warn budget exceeded.
            header(BUDGET_WARNING_HEADER, budget_warning),
        ],
    }}
    ext_proc = {
        # A worker that is restarting refuses the stream: open it on another worker.
        "grpc_service": {"envoy_grpc": {"cluster_name": EXT_PROC_CLUSTER},
                         "initial_metadata": [{"key": SITE_METADATA_KEY,
                                               "value": UPSTREAM_SITE}],
                         "retry_policy": {
            "num_retries": 2, "retry_on": "connect-failure,refused-stream,unavailable",
            "retry_back_off": {"base_interval": "0.01s", "max_interval": "0.1s"},
            # Round-robin alone may hand the retry to the dead worker again.
            "retry_host_predicate": [{
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host"
                                          ".previous_hosts.v3.PreviousHostsPredicate"}}],
            "host_selection_retry_max_attempts": 3}},
        # Fail closed: an attempt whose worker is gone is not sent unprocessed (it would
        # carry no credential and the client's key); the client gets a 503 in its schema.
        "failure_mode_allow": False,
        "status_on_error": {"code": "ServiceUnavailable"},
        "processing_mode": {
            "request_header_mode": "SEND",
            "request_body_mode": "BUFFERED",
            "response_header_mode": "SEND",
            "response_body_mode": "NONE",
            "request_trailer_mode": "SKIP",
            "response_trailer_mode": "SKIP",
        },
        "allow_mode_override": True,
        # An attempt that reads its whole reply without the reply's headers (a policy without
        # the cost in replies) learns its status with the body (ext_proc/attempt.py).
        "response_attributes": [RESPONSE_CODE_ATTRIBUTE],
        # What Envoy read from the body before routing: an attempt that forwards the body
        # unchanged needs nothing else from it (ext_proc/attempt.py).
        "metadata_options": {"forwarding_namespaces": {"untyped": [METADATA_NAMESPACE]}},
        "message_timeout": f"{settings.ext_proc_message_timeout_s:.3f}s",
        "mutation_rules": {"allow_all_routing": True},
    }
    worker = {"name": "envoy.filters.http.ext_proc", "typed_config": any_of(
        "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor", ext_proc)}
    codec = {"name": "envoy.filters.http.upstream_codec", "typed_config": any_of(
        "envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec", {})}
    if not direct:
        return [_header_mutation("envoy.filters.http.header_mutation", mutation), worker, codec]
    # The worker's headers are only for the attempts that reach a worker: a request forwarded
    # alone would have them set and removed again (~20,000 instructions, callgrind).
    mutations = mutation["mutations"]
    return [
        skipped_if_marked(_header_mutation(
            "switchboard.worker_headers",
            {"mutations": {"request_mutations": mutations["request_mutations"]}})),
        _header_mutation("switchboard.reply_headers",
                         {"mutations": {"response_mutations": mutations["response_mutations"]}}),
        unless_marked(worker, DIRECT_HEADER), strip_internal_headers(), codec]


def _header_mutation(name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "typed_config": any_of(
        "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation", config)}

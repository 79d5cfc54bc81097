"""The one HTTP listener every client talks to, and its router-level filter chain."""

from __future__ import annotations

from typing import Any

from control_plane.compiler.direct import forwards_directly, unless_marked
from control_plane.compiler.lane import admits_in_envoy, lane_filter
from control_plane.compiler.local_reply import local_reply_config
from control_plane.compiler.reply_usage import added_usage_filter, reply_usage_filter
from control_plane.compiler.request_reader import request_reader_filter
from control_plane.compiler.settings import (
    EXT_PROC_CLUSTER,
    LISTENER_NAME,
    ROUTE_CONFIG_NAME,
    GatewaySettings,
)
from control_plane.compiler.translations import translated_reply_filter
from control_plane.policy import Policy
from control_plane.xds.resources import any_of
from ext_proc.contract import (
    ADMITTED_HEADER,
    CLIENT_PATH_KEY,
    DIRECT_HEADER,
    DIRECT_METADATA_KEY,
    INTERNAL_HEADER_PREFIX,
    LANE_ADMITTED_KEY,
    METADATA_NAMESPACE,
    MODEL_KEY,
    RESERVATION_METADATA_KEY,
    ROUTER_SITE,
    SITE_METADATA_KEY,
)

HCM = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def listener(policy: Policy, settings: GatewaySettings) -> dict[str, Any]:
    hcm = {
        "stat_prefix": "switchboard",
        "codec_type": "AUTO",
        "use_remote_address": True,
        # Clients can quote it; usage records are keyed by it.
        "always_set_request_id_in_response": True,
        "rds": {"route_config_name": ROUTE_CONFIG_NAME,
                "config_source": {"ads": {}, "resource_api_version": "V3"}},
        "http_filters": http_filters(policy, settings),
        "local_reply_config": local_reply_config(),
        "access_log": [access_log(), *([reservation_log()] if admits(policy) else [])],
        # LLM answers are slow; the route's timeout bounds a request, not these.
        "stream_idle_timeout": "600s",
        "request_headers_timeout": "30s",
    }
    return {
        "name": LISTENER_NAME,
        "address": {"socket_address": {"address": settings.listener_host,
                                       "port_value": settings.listener_port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": any_of(HCM, hcm),
        }]}],
    }


# Written after a command, makes Envoy format the field as a string: the method, cut to no
# characters. A field of one command keeps its value's type, and to read a value of the
# request's dynamic metadata that way Envoy copies all of the metadata first (~13,000
# instructions a field, callgrind); as a string it reads the value in place. A missing value
# then reads "-", not null.
_AS_STRING = "%REQ(:METHOD):0%"


def access_log() -> dict[str, Any]:
    """One JSON line per request on Envoy's stdout, answered locally or not. No bodies, no
    headers beyond the request id: nothing secret can reach it."""
    fields = {
        "time": "%START_TIME%", "request_id": "%REQ(X-REQUEST-ID)%",
        "method": "%REQ(:METHOD)%",
        "path": f"%DYNAMIC_METADATA({METADATA_NAMESPACE}:{CLIENT_PATH_KEY})%{_AS_STRING}",
        "model": f"%DYNAMIC_METADATA({METADATA_NAMESPACE}:{MODEL_KEY})%{_AS_STRING}",
        "provider": f"%UPSTREAM_METADATA({METADATA_NAMESPACE}:provider)%",
        "status": "%RESPONSE_CODE%", "flags": "%RESPONSE_FLAGS%",
        "details": "%RESPONSE_CODE_DETAILS%",
        "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%", "duration_ms": "%DURATION%",
        "upstream_ms": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
        "bytes_in": "%BYTES_RECEIVED%", "bytes_out": "%BYTES_SENT%",
    }
    return {"name": "envoy.access_loggers.stdout", "typed_config": any_of(
        "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        {"log_format": {"json_format": fields}})}


def admits(policy: Policy) -> bool:
    """Whether requests pass the router-level worker call: only when there is something to
    check (keys, budgets, rate limits), so an open gateway pays nothing for it, or when it
    may hand requests to Envoy to forward alone (that saves the attempts' calls)."""
    return bool(policy.teams or policy.budgets) or forwards_directly(policy)


def reservation_log() -> dict[str, Any]:
    """Envoy's record of each finished request that holds a reservation, was forwarded alone
    or was admitted by Envoy's lane, streamed in batches to the workers, which release the
    reservation, record a forwarded request's usage and count the lane's admissions: the one
    signal that a request is over, whatever its outcome (served, failed over, refused
    upstream, client gone)."""
    def present(key: str) -> dict[str, Any]:
        return {"metadata_filter": {"matcher": {
            "filter": METADATA_NAMESPACE, "path": [{"key": key}],
            "value": {"present_match": True}}}}

    return {
        "name": "envoy.access_loggers.http_grpc",
        "filter": {"or_filter": {"filters": [present(RESERVATION_METADATA_KEY),
                                             present(DIRECT_METADATA_KEY),
                                             present(LANE_ADMITTED_KEY)]}},
        "typed_config": any_of(
            "envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig",
            {"common_config": {
                "log_name": "switchboard_reservations",
                "grpc_service": {"envoy_grpc": {"cluster_name": EXT_PROC_CLUSTER}},
                "transport_api_version": "V3",
                "buffer_flush_interval": "0.1s",
                # About 70 entries a message under load, not Envoy's default of 16 KiB (18):
                # a worker's cost per message is shared by more entries (0.19 -> 0.13 ms of
                # worker CPU per request at 64 connections).
                "buffer_size_bytes": 65536,
            }}),
    }


def router_ext_proc(settings: GatewaySettings) -> dict[str, Any]:
    """Admission: headers only; the model and max tokens come as metadata from the body."""
    return _filter("envoy.filters.http.ext_proc",
                   "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor", {
        "grpc_service": {
            "envoy_grpc": {"cluster_name": EXT_PROC_CLUSTER},
            "initial_metadata": [{"key": SITE_METADATA_KEY, "value": ROUTER_SITE}],
            "retry_policy": {
                "num_retries": 2, "retry_on": "connect-failure,refused-stream,unavailable",
                "retry_back_off": {"base_interval": "0.01s", "max_interval": "0.1s"}}},
        "failure_mode_allow": False,
        "processing_mode": {
            "request_header_mode": "SEND", "response_header_mode": "SKIP",
            "request_body_mode": "NONE", "response_body_mode": "NONE",
            "request_trailer_mode": "SKIP", "response_trailer_mode": "SKIP"},
        "metadata_options": {
            "forwarding_namespaces": {"untyped": [METADATA_NAMESPACE]},
            "receiving_namespaces": {"untyped": [METADATA_NAMESPACE]}},
        "message_timeout": f"{settings.ext_proc_message_timeout_s:.3f}s",
        # A request forwarded alone gets the provider's :authority here.
        "mutation_rules": {"allow_all_routing": True},
    })


def http_filters(policy: Policy, settings: GatewaySettings) -> list[dict[str, Any]]:
    admission = [router_ext_proc(settings)] if admits(policy) else []
    if admits_in_envoy(policy):
        # The lane admits what it can; the worker admits the rest.
        admission = [lane_filter(), added_usage_filter(),
                     *([translated_reply_filter()] if forwards_directly(policy) else []),
                     unless_marked(admission[0], DIRECT_HEADER, ADMITTED_HEADER)]
    if forwards_directly(policy):
        admission.append(reply_usage_filter())
    return [
        # Before anything reads them: a client must never set our internal headers.
        _filter("envoy.filters.http.header_mutation",
                "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                {"mutations": {"request_mutations": [
                    {"remove_on_match": {"key_matcher": {"prefix": INTERNAL_HEADER_PREFIX}}}]}}),
        # The path the client called, kept where nothing can rewrite it: the lane and the
        # workers set :path for each provider on the one header map all attempts share, and
        # the error schema of a failure after that must still be the client's, and the access
        # log's path the client's. Before the buffer, whose 413 is logged too.
        _filter("switchboard.client_path",
                "envoy.extensions.filters.http.header_to_metadata.v3.Config",
                {"request_rules": [_header_rule(":path", CLIENT_PATH_KEY)]}),
        # Bounds the body (413) before the reader below reads it whole.
        _filter("envoy.filters.http.buffer", "envoy.extensions.filters.http.buffer.v3.Buffer",
                {"max_request_bytes": policy.gateway.max_request_bytes}),
        # The model and the rest the routes and admission read from the body; the lane reads
        # them itself (one Lua filter, not two).
        *([] if admits_in_envoy(policy) else [request_reader_filter()]),
        *admission,
        _filter("envoy.filters.http.router",
                "envoy.extensions.filters.http.router.v3.Router", {}),
    ]


def _header_rule(header: str, key: str) -> dict[str, Any]:
    return {"header": header, "on_header_present": {
        "metadata_namespace": METADATA_NAMESPACE, "key": key, "type": "STRING"},
        "remove": False}


def _filter(name: str, type_name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "typed_config": any_of(type_name, config)}

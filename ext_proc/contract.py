"""What Envoy hands the ext_proc workers, and how: the names both sides must agree on.

The control plane configures Envoy to set these; the workers read them. Every header here is
internal: Envoy strips client-sent `x-switchboard-*` headers at the listener, and the workers
remove them before a request leaves for a provider.
"""

from __future__ import annotations

from enum import StrEnum

METADATA_NAMESPACE = "switchboard"
INTERNAL_HEADER_PREFIX = "x-switchboard-"

# Set per attempt by the native header_mutation filter in front of the upstream ext_proc.
PROVIDER_HEADER = "x-switchboard-provider"
TARGET_MODEL_HEADER = "x-switchboard-target-model"
# The path the client called, which names its API: attempts rewrite :path on the one header
# map all attempts of a request share.
CLIENT_PATH_HEADER = "x-switchboard-client-path"

# Set once per request by the router-level worker call, read by every attempt.
TEAM_HEADER = "x-switchboard-team"
KEY_ID_HEADER = "x-switchboard-key-id"
BUDGET_WARNING_HEADER = "x-switchboard-budget-warning"
# Dynamic metadata key under METADATA_NAMESPACE: the warn budgets a request exceeded.
BUDGET_WARNING_METADATA_KEY = "budget_warning"
# Set once per request at the listener from the model metadata: the routes' match tree looks
# the model up in it. The router-level call rewrites it when it downgrades the request.
ROUTE_MODEL_HEADER = "x-switchboard-route-model"
# Set per attempt from the request's metadata: the model the client asked for.
REQUESTED_MODEL_HEADER = "x-switchboard-requested-model"
# Envoy's count of this request's attempts (virtual host include_request_attempt_count).
ATTEMPT_COUNT_HEADER = "x-envoy-attempt-count"

# gRPC metadata naming which of the two ext_proc call sites opened a stream.
SITE_METADATA_KEY = "x-switchboard-site"
ROUTER_SITE = "router"
UPSTREAM_SITE = "upstream"
# The attribute the upstream call asks Envoy for with the reply's first message: an attempt
# that skips the reply's headers learns the status with the body. Envoy files attributes
# under its filter's name.
RESPONSE_CODE_ATTRIBUTE = "response.code"
EXT_PROC_ATTRIBUTES = "envoy.filters.http.ext_proc"
# Dynamic metadata the router-level call writes: the reservation to release at the end.
RESERVATION_METADATA_KEY = "reservation"
# Set by the router-level call on a request Envoy forwards as it is, with no upstream worker
# call: the header makes each attempt skip the upstream ext_proc, the metadata (provider,
# model, team, key_id) is what its usage record needs from the access log.
DIRECT_HEADER = "x-switchboard-direct"
DIRECT_METADATA_KEY = "direct"
# Set by Envoy's lane on every request it admits (the caller's team): the workers count the
# admission from the request's access-log entry, as the router-level call counts its own.
LANE_ADMITTED_KEY = "lane_admitted"
# Set by Envoy's lane on an OpenAI stream it asked for its usage on the client's behalf: the
# usage event, which the client did not ask for, is taken out of the reply.
USAGE_ADDED_HEADER = "x-switchboard-usage-added"
# Set by Envoy's lane on a request it translated for its provider's API itself: the reply
# goes back translated by Envoy too (control_plane/compiler/lua/translated_reply.lua).
TRANSLATED_HEADER = "x-switchboard-translated"
# Set by Envoy's lane on a request it admitted (the caller's team and key id set beside it)
# whose attempts the worker processes: the router-level call is skipped, the attempts are not.
ADMITTED_HEADER = "x-switchboard-admitted"
# Key, in METADATA_NAMESPACE, of the usage fields Envoy's Lua reader finds in a reply forwarded
# alone, whole or streamed (control_plane/compiler/reply_usage.py): one JSON object of them,
# each under its dotted path in the reply's `usage` object ({"prompt_tokens_details.
# cached_tokens": 1024}); the reader of each API reads its own schema's names. One value,
# not one per field: each value costs Envoy ~4,600 instructions a request (callgrind).
REPLY_USAGE_KEY = "reply_usage"
OPENAI_USAGE_FIELDS = ("prompt_tokens", "completion_tokens",
                       "prompt_tokens_details.cached_tokens",
                       "completion_tokens_details.reasoning_tokens")
ANTHROPIC_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
                          "cache_creation_input_tokens")
REPLY_USAGE_FIELDS = (*OPENAI_USAGE_FIELDS, *ANTHROPIC_USAGE_FIELDS)
# The fields a reply reports only once its answer is whole (OpenAI's usage chunk, Anthropic's
# message_delta, a whole reply's usage): Anthropic's message_start carries a placeholder
# output count, which is not read.
REPLY_FINAL_FIELDS = ("completion_tokens", "output_tokens")

# Returned to the client.
RESPONSE_PROVIDER_HEADER = "x-switchboard-provider"
RESPONSE_MODEL_HEADER = "x-switchboard-model"
COST_HEADER = "x-switchboard-cost-usd"

# Dynamic metadata key of the path the client called (before any attempt rewrote :path).
CLIENT_PATH_KEY = "client_path"
# Dynamic metadata Envoy reads from the client's body before routing, with its size, or why the
# routes refuse the body (control_plane/compiler/lua/request_fields.lua): an attempt that
# forwards the body unchanged decides on these and never reads the body.
MODEL_KEY = "model"
STREAM_KEY = "stream"
INCLUDE_USAGE_KEY = "include_usage"
BODY_SIZE_KEY = "body_size"
BODY_ERROR_KEY = "body_error"  # "invalid_json", or "missing_model"
# Set by admission when it serves another model than the body names.
DOWNGRADED_FROM_KEY = "downgraded_from"

PROCESSOR_TYPE_URL = "type.googleapis.com/switchboard.v1.ProcessorConfig"
PROCESSOR_RESOURCE_NAME = "processor"

# The authority of attempts that the mock provider answers inside the worker.
MOCK_AUTHORITY = "mock.switchboard.internal"


class ClientApi(StrEnum):
    """The API a client called, which fixes the schema of its requests, replies and errors."""

    OPENAI_CHAT = "openai.chat"
    OPENAI_EMBEDDINGS = "openai.embeddings"
    ANTHROPIC_MESSAGES = "anthropic.messages"

    @property
    def path(self) -> str:
        return _PATHS[self]

    @property
    def error_style(self) -> str:
        return "anthropic" if self is ClientApi.ANTHROPIC_MESSAGES else "openai"


def client_api_for_path(path: str) -> ClientApi | None:
    return _APIS.get(path.partition("?")[0])


_PATHS = {
    ClientApi.OPENAI_CHAT: "/v1/chat/completions",
    ClientApi.OPENAI_EMBEDDINGS: "/v1/embeddings",
    ClientApi.ANTHROPIC_MESSAGES: "/v1/messages",
}
# Looked up for every access-log entry and every attempt.
_APIS = {api_path: api for api, api_path in _PATHS.items()}

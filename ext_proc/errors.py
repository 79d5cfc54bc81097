"""Errors in the schema of the API the client called, by status.

OpenAI: {"error": {"message", "type", "code"}}; Anthropic: {"type": "error", "error": {"type",
"message"}}. Every error reply, Envoy's own and the workers' alike, is a local reply with a
plain-text message; the listener's local_reply_config, built from this table, wraps it in the
client API's schema. One place decides the shape.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorKind:
    openai_type: str
    openai_code: str
    anthropic_type: str


ERROR_KINDS: dict[int, ErrorKind] = {
    400: ErrorKind("invalid_request_error", "invalid_request", "invalid_request_error"),
    401: ErrorKind("invalid_request_error", "invalid_api_key", "authentication_error"),
    403: ErrorKind("permission_error", "model_not_allowed", "permission_error"),
    404: ErrorKind("invalid_request_error", "not_found", "not_found_error"),
    405: ErrorKind("invalid_request_error", "method_not_allowed", "invalid_request_error"),
    413: ErrorKind("invalid_request_error", "request_too_large", "request_too_large"),
    429: ErrorKind("rate_limit_error", "rate_limit_exceeded", "rate_limit_error"),
    500: ErrorKind("server_error", "internal_error", "api_error"),
    502: ErrorKind("server_error", "bad_gateway", "api_error"),
    503: ErrorKind("server_error", "service_unavailable", "overloaded_error"),
    504: ErrorKind("server_error", "upstream_timeout", "api_error"),
}


def error_kind(status: int) -> ErrorKind:
    if status in ERROR_KINDS:
        return ERROR_KINDS[status]
    return ERROR_KINDS[500] if status >= 500 else ERROR_KINDS[400]


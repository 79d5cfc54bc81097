"""Envoy's own error replies (413, 503, no route...) in the schema of the API called."""

from __future__ import annotations

from typing import Any

from control_plane.xds.resources import any_of
from ext_proc.contract import CLIENT_PATH_KEY, METADATA_NAMESPACE, ClientApi
from ext_proc.errors import ERROR_KINDS

UNKNOWN_MODEL_MESSAGE = (
    f"The model '%DYNAMIC_METADATA({METADATA_NAMESPACE}:model)%' is not served by this gateway;"
    " GET /v1/models lists the models it serves."
)


PROCESSOR_FAILED_MESSAGE = (
    "The gateway's request processor stopped while handling this request; try again.")
PROCESSOR_TIMEOUT_MESSAGE = (
    "The gateway's request processor did not answer in time; try again.")
# Envoy's ext_proc filter answers its own failures (stream broken or refused, no reply within
# message_timeout) with an empty body; its response code details say which it was.
_PROCESSOR_TIMED_OUT = "response.code_details == 'ext_proc_error_per-message_timeout_exceeded'"
_PROCESSOR_FAILED = "response.code_details.startsWith('ext_proc_error')"


def local_reply_config() -> dict[str, Any]:
    mappers: list[dict[str, Any]] = []
    for api in ClientApi:
        is_api = {"metadata_filter": {"matcher": {
            "filter": METADATA_NAMESPACE, "path": [{"key": CLIENT_PATH_KEY}],
            "value": {"string_match": {"prefix": api.path}}}}}
        mappers.extend(_processor_failures([is_api], api))
        mappers.append(_mapper([is_api, _status(404), _has_model()], api, 404,
                               UNKNOWN_MODEL_MESSAGE, code="model_not_found"))
        for status in ERROR_KINDS:
            mappers.append(_mapper([is_api, _status(status)], api, status, "%LOCAL_REPLY_BODY%"))
        mappers.append(_mapper([is_api, _status_at_least(500)], api, 500, "%LOCAL_REPLY_BODY%"))
        mappers.append(_mapper([is_api, _status_at_least(400)], api, 400, "%LOCAL_REPLY_BODY%"))
    mappers.extend(_processor_failures([], ClientApi.OPENAI_CHAT))
    for status in ERROR_KINDS:  # any other path answers in OpenAI's schema
        mappers.append(_mapper([_status(status)], ClientApi.OPENAI_CHAT, status,
                               "%LOCAL_REPLY_BODY%"))
    return {"mappers": mappers}


def _processor_failures(filters: list[dict[str, Any]], api: ClientApi) -> list[dict[str, Any]]:
    return [
        {**_mapper([*filters, _cel(_PROCESSOR_TIMED_OUT)], api, 504, PROCESSOR_TIMEOUT_MESSAGE),
         "status_code": 504},
        {**_mapper([*filters, _cel(_PROCESSOR_FAILED)], api, 503, PROCESSOR_FAILED_MESSAGE),
         "status_code": 503},
    ]


def _cel(expression: str) -> dict[str, Any]:
    return {"extension_filter": {
        "name": "envoy.access_loggers.extension_filters.cel",
        "typed_config": any_of("envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                               {"expression": expression})}}


def _mapper(filters: list[dict[str, Any]], api: ClientApi, status: int, message: str,
            code: str | None = None) -> dict[str, Any]:
    kind = ERROR_KINDS[status]
    if api.error_style == "anthropic":
        body: dict[str, Any] = {"type": "error",
                                "error": {"type": kind.anthropic_type, "message": message}}
    else:
        body = {"error": {"message": message, "type": kind.openai_type,
                          "code": code or kind.openai_code}}
    return {
        "filter": filters[0] if len(filters) == 1 else {"and_filter": {"filters": filters}},
        "body_format_override": {"json_format": body, "content_type": "application/json"},
    }


def _status(status: int) -> dict[str, Any]:
    return _comparison("EQ", status)


def _status_at_least(status: int) -> dict[str, Any]:
    return _comparison("GE", status)


def _comparison(op: str, status: int) -> dict[str, Any]:
    return {"status_code_filter": {"comparison": {
        "op": op, "value": {"default_value": status, "runtime_key": "switchboard.none"}}}}


def _has_model() -> dict[str, Any]:
    return {"metadata_filter": {"matcher": {
        "filter": METADATA_NAMESPACE, "path": [{"key": "model"}],
        "value": {"present_match": True}}}}

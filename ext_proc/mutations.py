"""Small builders for ext_proc replies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.type.v3 import http_status_pb2


def header_map(headers: ep.HttpHeaders) -> dict[str, str]:
    """Envoy sends raw_value; lower-case names, last value wins (fine for what we read)."""
    return {h.key: (h.raw_value.decode("latin-1") if h.raw_value else h.value)
            for h in headers.headers.headers}


_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def header_mutation(set_headers: Mapping[str, str],
                    remove: Iterable[str] = ()) -> ep.HeaderMutation:
    # Nested messages given as dicts: half the cost of building each message object (~13
    # against ~26 µs for an attempt's headers), and this runs on every attempt.
    return ep.HeaderMutation(
        set_headers=[{"header": {"key": k, "raw_value": v.encode("latin-1")},
                      "append_action": _OVERWRITE}
                     for k, v in set_headers.items()],
        remove_headers=sorted(set(remove) - set(set_headers)),
    )


def immediate(status: int, body: bytes, headers: Mapping[str, str],
              details: str) -> ep.ProcessingResponse:
    return ep.ProcessingResponse(immediate_response=ep.ImmediateResponse(
        status=http_status_pb2.HttpStatus(code=status),
        headers=header_mutation(headers), body=body, details=details))

"""Typed Envoy resources from plain dicts that read like Envoy's own YAML.

`json_format.ParseDict` checks every field name against the real protobuf descriptors, so a
typo in the compiler fails at compile time, not in Envoy.
"""

from __future__ import annotations

import json
from typing import Any

# Imported for their side effect: registering the message types that "@type" names refer to.
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import extension_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.access_loggers.filters.cel.v3 import cel_pb2  # noqa: F401
from envoy.extensions.access_loggers.grpc.v3 import als_pb2  # noqa: F401
from envoy.extensions.access_loggers.stream.v3 import stream_pb2  # noqa: F401
from envoy.extensions.common.matching.v3 import extension_matcher_pb2  # noqa: F401
from envoy.extensions.filters.common.matcher.action.v3 import skip_action_pb2  # noqa: F401
from envoy.extensions.filters.http.buffer.v3 import buffer_pb2  # noqa: F401
from envoy.extensions.filters.http.composite.v3 import composite_pb2  # noqa: F401
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2  # noqa: F401
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2  # noqa: F401
from envoy.extensions.filters.http.header_to_metadata.v3 import (  # noqa: F401
    header_to_metadata_pb2,
)
from envoy.extensions.filters.http.lua.v3 import lua_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.http.upstream_codec.v3 import upstream_codec_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (  # noqa: F401
    http_connection_manager_pb2,
)
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2  # noqa: F401
from envoy.extensions.retry.priority.previous_priorities.v3 import (  # noqa: F401
    previous_priorities_config_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from envoy.type.matcher.v3 import http_inputs_pb2  # noqa: F401
from google.protobuf import any_pb2, json_format, message
from xds.type.v3 import typed_struct_pb2  # noqa: F401

from protos.switchboard.v1 import processor_pb2

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
PROCESSOR = "type.googleapis.com/switchboard.v1.ProcessorConfig"
# A filter's configuration delivered on its own (ECDS): it changes without touching the listener.
EXTENSION = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"

MESSAGE_TYPES: dict[str, type[message.Message]] = {
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
    CLUSTER: cluster_pb2.Cluster,
    PROCESSOR: processor_pb2.ProcessorConfig,
    EXTENSION: extension_pb2.TypedExtensionConfig,
}

# The order in which a new snapshot is sent: clusters and filter configurations before the
# listeners and routes that use them, and the processors' view before Envoy can send them
# traffic that needs it.
PUSH_ORDER = (PROCESSOR, CLUSTER, EXTENSION, LISTENER, ROUTE)


def typed(type_url: str, body: dict[str, Any]) -> message.Message:
    return json_format.ParseDict(body, MESSAGE_TYPES[type_url]())


def any_of(type_name: str, body: dict[str, Any]) -> dict[str, Any]:
    """An `Any` field in dict form: {"@type": ..., **body}."""
    return {"@type": f"type.googleapis.com/{type_name}", **body}


def pack(resource: message.Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(resource)
    return packed


def to_dict(resource: message.Message) -> dict[str, Any]:
    """Plain dicts (no OrderedDict from Any fields), as Envoy's YAML would show them."""
    text = json_format.MessageToJson(resource, preserving_proto_field_name=True)
    result: dict[str, Any] = json.loads(text)
    return result

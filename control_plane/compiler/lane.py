"""Admission in Envoy (`gateway.admission: envoy`): a Lua filter, delivered on its own
(ECDS), that admits the requests a worker would forward alone with no worker call at all, and
the requests only the workers' attempts can process with no admission call.

The lane holds the policy's gateway-key hashes and teams, the requests each model's one
provider takes as they are or translated by the lane's Lua (decided by the same translators
the workers use: control_plane/compiler/translations.py), and the budgets close
to their limit, which the control plane re-reads every second (control_plane/budget_watch.py).
A request the lane does not admit goes on to the worker's admission unchanged, so every
refusal, reservation and downgrade stays the worker's, exactly as without the lane.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from control_plane.compiler.lua_source import script, to_lua
from control_plane.compiler.request_reader import request_reader_source
from control_plane.compiler.translations import LUA, translation_source
from control_plane.keys import HASH_PREFIX
from control_plane.policy import Policy
from control_plane.xds.resources import any_of
from ext_proc.contract import (
    ADMITTED_HEADER,
    DIRECT_HEADER,
    DIRECT_METADATA_KEY,
    KEY_ID_HEADER,
    LANE_ADMITTED_KEY,
    METADATA_NAMESPACE,
    TEAM_HEADER,
    TRANSLATED_HEADER,
    USAGE_ADDED_HEADER,
    ClientApi,
)
from ext_proc.credentials import KEY_HEADERS
from ext_proc.outgoing import DROPPED_HEADERS, JSON_CONTENT_TYPE
from ext_proc.secrets import locate
from ext_proc.translators.base import (
    Backend,
    ClientRequest,
    Passthrough,
    TranslatedInEnvoy,
    Translator,
    as_passthrough,
    as_translated_in_envoy,
)
from ext_proc.translators.registry import translator_factory
from ext_proc.view import provider_authority
from protos.switchboard.v1 import processor_pb2

LANE_FILTER_NAME = "switchboard.lane"
# Larger request bodies are translated by a worker, off Envoy's threads.
MAX_TRANSLATED_BYTES = 1024 * 1024


def admits_in_envoy(policy: Policy) -> bool:
    return policy.gateway.admission == "envoy"


def lane_filter() -> dict[str, Any]:
    """The listener's reference to the lane; the filter itself comes as its own resource."""
    return {"name": LANE_FILTER_NAME, "config_discovery": {
        "config_source": {"ads": {}, "resource_api_version": "V3"},
        "type_urls": [f"type.googleapis.com/{LUA}"]}}


def lane_extension(config: processor_pb2.ProcessorConfig, watched: Collection[str],
                   secrets_dir: str) -> dict[str, Any]:
    """The lane as an ECDS resource (TypedExtensionConfig). `watched`: the budgets a worker
    must check for every request."""
    source = "\n".join((
        f"local LANE = {to_lua(lane_tables(config, watched, secrets_dir))}",
        script("sha256.lua"), translation_source(), request_reader_source(),
        script("lane.lua")))
    # The route stays the model's: rewriting :path for the provider must not re-route.
    return {"name": LANE_FILTER_NAME, "typed_config": any_of(
        LUA, {"default_source_code": {"inline_string": source}, "stat_prefix": "lane",
              "clear_route_cache": False})}


@dataclass(frozen=True)
class LaneRoute:
    """How a model's one provider takes a request of one client API as it is."""

    provider: str
    model: str
    path: str
    authority: str
    headers: Mapping[str, str]
    streams: bool  # a stream goes as it is even when it did not ask for its usage
    # Else, for OpenAI chat: the lane asks for the usage itself (stream_options), and the
    # usage event, which the client did not ask for, is taken out of the reply.
    adds_usage: bool = False
    # The Lua translation of a request in another API (TranslatedInEnvoy), and the client API
    # path of the schema its replies come in.
    translation: str = ""
    reply_api: str = ""

    def as_lua(self) -> dict[str, Any]:
        # The provider's name for the model as a JSON string, for a body that names it
        # otherwise (the lane writes it in place of the client's).
        route = {"provider": self.provider, "model": self.model,
                 "model_json": orjson.dumps(self.model).decode(), "path": self.path,
                 "authority": self.authority, "headers": dict(self.headers),
                 "streams": self.streams, "adds_usage": self.adds_usage}
        if self.translation:
            route |= {"translation": self.translation, "reply_api": self.reply_api}
        return route


def lane_routes(config: processor_pb2.ProcessorConfig) -> dict[str, LaneRoute]:
    """By "<client API path> <model>": what ext_proc/direct.py decides per request, decided
    once per policy for every model with one target. A model the provider names otherwise
    has a route too: the lane renames it in the body (Passthrough.unchanged); and so has one
    whose provider takes another API that the lane can translate to (TranslatedInEnvoy)."""
    routes = {}
    for name, model in config.models.items():
        if len(model.targets) != 1:
            continue
        target = model.targets[0]
        provider = config.providers[target.provider]
        if provider.credential_refs or (provider.api_key_ref
                                        and provider.kind not in KEY_HEADERS):
            continue  # signed or token credentials: only a worker can make them
        backend = _backend(config, target)
        for api in ClientApi:
            route = _route(api, backend)
            if route is not None:
                routes[f"{api.path} {name}"] = route
    return routes


def _backend(config: processor_pb2.ProcessorConfig, target: processor_pb2.Target) -> Backend:
    provider = config.providers[target.provider]
    return Backend(target.provider, provider.kind, provider.base_url, target.model,
                   dict(provider.options))


def _translator(api: ClientApi, backend: Backend) -> Translator | None:
    factory = translator_factory(api, backend.kind)
    return factory(api, backend) if factory is not None else None


def _passthrough(api: ClientApi, backend: Backend) -> Passthrough | None:
    """The translator for `api` on `backend` when it can pass bodies through, else None."""
    return as_passthrough(_translator(api, backend))


def _route(api: ClientApi, backend: Backend) -> LaneRoute | None:
    translator = _translator(api, backend)
    passthrough = as_passthrough(translator)
    if passthrough is None:
        in_envoy = as_translated_in_envoy(translator)
        return _translated_route(in_envoy, backend) if in_envoy is not None else None
    upstream = passthrough.unchanged(ClientRequest(backend.model))
    if upstream is None:
        return None
    streams = passthrough.unchanged(ClientRequest(backend.model, stream=True)) is not None
    adds_usage = (not streams and api is ClientApi.OPENAI_CHAT and passthrough.unchanged(
        ClientRequest(backend.model, stream=True, include_usage=True)) is not None)
    return LaneRoute(backend.provider, backend.model, upstream.path,
                     provider_authority(backend.kind, backend.base_url),
                     {"content-type": JSON_CONTENT_TYPE, **upstream.headers}, streams,
                     adds_usage)


def _translated_route(translator: TranslatedInEnvoy, backend: Backend) -> LaneRoute:
    """The translation's streams report their usage whatever the client asked (`streams`)."""
    upstream = translator.envoy_upstream()
    return LaneRoute(backend.provider, backend.model, upstream.path,
                     provider_authority(backend.kind, backend.base_url),
                     {"content-type": JSON_CONTENT_TYPE, **upstream.headers}, streams=True,
                     translation=translator.envoy_translation,
                     reply_api=translator.reply_api.path)


def worker_attempts(config: processor_pb2.ProcessorConfig) -> list[str]:
    """"<client API path> <model>" of the requests whose every attempt a worker processes (a
    model with several targets, or one whose provider must translate the API): the lane may
    admit them itself, for no admission call can forward them alone."""
    attempts = []
    for name, model in config.models.items():
        backend = _backend(config, model.targets[0]) if len(model.targets) == 1 else None
        for api in ClientApi:
            if backend is None or _passthrough(api, backend) is None:
                attempts.append(f"{api.path} {name}")
    return attempts


def lane_tables(config: processor_pb2.ProcessorConfig, watched: Collection[str],
                secrets_dir: str) -> dict[str, Any]:
    keys = {digest.removeprefix(HASH_PREFIX): name
            for name, team in config.teams.items() for digest in team.key_hashes}
    teams = {name: {"rate_limited": team.HasField("rate_limit")
                    or team.HasField("key_rate_limit"),
                    "models": False if team.all_models else dict.fromkeys(team.models, True)}
             for name, team in config.teams.items()}
    budgets = [{"team": b.match.team, "key": b.match.key, "model": b.match.model,
                "provider": b.match.provider}
               for name, b in sorted(config.budgets.items()) if name in watched]
    return {
        "takes_keys": bool(keys), "keys": keys, "teams": teams,
        # With the cost in replies, nothing is forwarded alone: every request the lane admits
        # goes to the workers' attempts.
        "forwards": config.direct_forwarding,
        "routes": ({key: route.as_lua() for key, route in lane_routes(config).items()}
                   if config.direct_forwarding else {}),
        "max_translated_bytes": MAX_TRANSLATED_BYTES,
        "attempts": (dict.fromkeys(worker_attempts(config), True)
                     if config.direct_forwarding else {}),
        # Each model's providers, which the budgets close to their limit are matched against.
        "providers": {name: [t.provider for t in model.targets]
                      for name, model in config.models.items()},
        # Only for requests Envoy forwards alone: otherwise it never reads a provider's key.
        "credentials": {name: _credential(p, secrets_dir)
                        for name, p in config.providers.items()
                        if p.api_key_ref and p.kind in KEY_HEADERS
                        and config.direct_forwarding},
        "watched": budgets,
        "dropped_headers": sorted(DROPPED_HEADERS),
        # The names the workers agree on with Envoy (ext_proc/contract.py).
        "names": {"namespace": METADATA_NAMESPACE, "direct_header": DIRECT_HEADER,
                  "usage_added_header": USAGE_ADDED_HEADER, "admitted_header": ADMITTED_HEADER,
                  "translated_header": TRANSLATED_HEADER,
                  "team_header": TEAM_HEADER, "key_id_header": KEY_ID_HEADER,
                  "direct": DIRECT_METADATA_KEY, "lane_admitted": LANE_ADMITTED_KEY,
                  "key_hash_prefix": HASH_PREFIX},
    }


def _credential(provider: processor_pb2.Provider, secrets_dir: str) -> dict[str, str]:
    """Where Envoy reads a provider's key: where the workers read it (secrets.py)."""
    header, prefix = KEY_HEADERS[provider.kind]
    source, where = locate(provider.api_key_ref, secrets_dir)
    return {"header": header, "prefix": prefix, source: where}

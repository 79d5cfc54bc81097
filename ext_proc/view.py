"""The worker's immutable view of one policy version, with credentials resolved."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog

from ext_proc.access import AccessView, build_access
from ext_proc.contract import MOCK_AUTHORITY
from ext_proc.credentials import SIGNER_MODULES
from ext_proc.secrets import Secret, SecretUnavailable, environment, resolve
from ext_proc.translators.base import Backend
from protos.switchboard.v1 import processor_pb2

if TYPE_CHECKING:
    from ext_proc.google_tokens import AccessTokens

log = structlog.get_logger("view")


def provider_authority(kind: str, base_url: str) -> str:
    return MOCK_AUTHORITY if kind == "mock" else urlsplit(base_url).netloc


@dataclass(frozen=True)
class ProviderView:
    name: str
    kind: str
    base_url: str
    api_key: Secret | None
    options: Mapping[str, str] = field(default_factory=dict)
    # Why the credential is missing, for the operator's log; never sent to clients.
    credential_error: str = ""
    # Credentials other than the API key, by name (aws_secret_access_key, service_account...).
    credentials: Mapping[str, Secret] = field(default_factory=dict)
    # A service account's cached access tokens (Vertex AI).
    tokens: AccessTokens | None = None
    # Public list prices apply (not a self-hosted server that merely speaks this schema).
    list_prices: bool = False

    @cached_property
    def authority(self) -> str:
        """The Host of this provider's requests, worked out once per policy version."""
        return provider_authority(self.kind, self.base_url)

    @cached_property
    def scheme(self) -> str:
        return urlsplit(self.base_url).scheme or "http"

    def backend(self, model: str) -> Backend:
        """This provider serving `model`, as a translator sees it."""
        return Backend(self.name, self.kind, self.base_url, model, self.options)


@dataclass(frozen=True)
class TargetView:
    provider: str
    model: str


@dataclass(frozen=True)
class StateView:
    """Where the ledger lives: backend "sqlite" (path, empty = default file) or "redis"."""

    backend: str = "sqlite"
    path: str = ""
    url_ref: str = ""


@dataclass(frozen=True)
class ProcessorView:
    version: str
    providers: Mapping[str, ProviderView]
    models: Mapping[str, tuple[TargetView, ...]] = field(default_factory=dict)
    access: AccessView = field(default_factory=AccessView)
    state: StateView = field(default_factory=StateView)
    # Admission may hand a request to Envoy to forward alone (ext_proc/direct.py).
    direct_forwarding: bool = False
    # Usage records older than this are deleted from a SQLite ledger (ext_proc/retention.py).
    usage_retention_s: int = 0

    @classmethod
    def empty(cls) -> ProcessorView:
        return cls("", {})


async def build_view(version: str, config: processor_pb2.ProcessorConfig,
                     secrets_dir: str) -> ProcessorView:
    env = environment()
    providers = {}
    for name, provider in config.providers.items():
        errors: list[str] = []
        if (signer := SIGNER_MODULES.get(provider.kind)) is not None:
            await asyncio.to_thread(importlib.import_module, signer)

        async def read(ref: str, errors: list[str] = errors,
                       name: str = name) -> Secret | None:
            try:
                return await asyncio.to_thread(resolve, ref, env, secrets_dir)
            except SecretUnavailable as exc:
                errors.append(f"{ref}: {exc}")
                log.error("provider credential unavailable", provider=name,
                          reason=errors[-1])
                return None

        secret = await read(provider.api_key_ref) if provider.api_key_ref else None
        credentials = {key: value for key, ref in sorted(provider.credential_refs.items())
                       if (value := await read(ref)) is not None}
        tokens = None
        if (account := credentials.get("service_account")) is not None:
            # Imported here: Google's auth library is a fifth of a worker's start-up.
            from ext_proc.google_tokens import AccessTokens

            try:
                tokens = AccessTokens.from_secret(name, account)
            except ValueError as exc:
                errors.append(f"{provider.credential_refs['service_account']}: {exc}")
                log.error("provider credential unusable", provider=name, reason=errors[-1])
            else:
                await tokens.refresh()  # a failure is logged; requests get 503s until it works
        providers[name] = ProviderView(name, provider.kind, provider.base_url, secret,
                                       dict(provider.options), "; ".join(errors),
                                       credentials, tokens, provider.list_prices)
    models = {name: tuple(TargetView(t.provider, t.model) for t in model.targets)
              for name, model in config.models.items()}
    state = StateView(config.state.backend or "sqlite", config.state.path, config.state.url_ref)
    # Building the price table loads genai-prices' data: off the event loop.
    access = await asyncio.to_thread(build_access, config)
    return ProcessorView(version, providers, models, access, state, config.direct_forwarding,
                         config.state.usage_retention_s)

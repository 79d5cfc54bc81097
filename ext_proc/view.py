"""The worker's immutable view of one policy version, with credentials resolved."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit

import structlog

from ext_proc.contract import MOCK_AUTHORITY
from ext_proc.secrets import Secret, SecretUnavailable, environment, resolve
from protos.switchboard.v1 import processor_pb2

log = structlog.get_logger("view")


@dataclass(frozen=True)
class ProviderView:
    name: str
    kind: str
    base_url: str
    api_key: Secret | None
    options: Mapping[str, str] = field(default_factory=dict)
    # Why the credential is missing, for the operator's log; never sent to clients.
    credential_error: str = ""

    @cached_property
    def authority(self) -> str:
        """The Host of this provider's requests, worked out once per policy version."""
        return MOCK_AUTHORITY if self.kind == "mock" else urlsplit(self.base_url).netloc


@dataclass(frozen=True)
class ProcessorView:
    version: str
    providers: Mapping[str, ProviderView]

    @classmethod
    def empty(cls) -> ProcessorView:
        return cls("", {})


async def build_view(version: str, config: processor_pb2.ProcessorConfig,
                     secrets_dir: str) -> ProcessorView:
    env = environment()
    providers = {}
    for name, provider in config.providers.items():
        secret, error = None, ""
        if provider.api_key_ref:
            try:
                secret = await asyncio.to_thread(resolve, provider.api_key_ref, env, secrets_dir)
            except SecretUnavailable as exc:
                error = f"{provider.api_key_ref}: {exc}"
                log.error("provider credential unavailable", provider=name, reason=error)
        providers[name] = ProviderView(name, provider.kind, provider.base_url, secret,
                                       dict(provider.options), error)
    return ProcessorView(version, providers)

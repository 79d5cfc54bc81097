"""How each backend kind carries its credential, and which headers must never leak.

Envoy reuses one header map for every attempt of a request, so each attempt removes every
credential header any backend uses before adding its own: attempt 2 must not carry attempt 1's
key, and no provider may see the client's gateway key. Bedrock's SigV4 signature covers the
request as sent, so every kind gets the outgoing request, not just its secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ext_proc.view import ProviderView

CREDENTIAL_HEADERS = frozenset({
    "authorization", "x-api-key", "api-key", "x-goog-api-key", "x-goog-user-project",
    "x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "proxy-authorization",
})


@dataclass(frozen=True)
class Outgoing:
    """What this attempt sends, as the provider receives it."""

    path: str
    body: bytes
    content_type: str


class CredentialUnavailable(Exception):
    """The provider's credential cannot be used right now: the attempt fails with a 503."""


Credential = Callable[["ProviderView", Outgoing], Mapping[str, str]]


def _key_header(name: str, prefix: str) -> Credential:
    def headers(provider: ProviderView, outgoing: Outgoing) -> Mapping[str, str]:
        return {} if provider.api_key is None else {name: prefix + provider.api_key.reveal()}
    return headers


def _service_account(provider: ProviderView, outgoing: Outgoing) -> Mapping[str, str]:
    token = provider.tokens.current() if provider.tokens is not None else None
    if token is None:
        raise CredentialUnavailable(f"provider {provider.name!r} has no access token yet")
    return {"authorization": f"Bearer {token}"}


def _sigv4(provider: ProviderView, outgoing: Outgoing) -> Mapping[str, str]:
    secrets = provider.credentials
    access_key, secret_key = secrets.get("aws_access_key_id"), secrets.get(
        "aws_secret_access_key")
    if access_key is None or secret_key is None:
        raise CredentialUnavailable(f"provider {provider.name!r} has no AWS credentials")
    token = secrets.get("aws_session_token")
    from ext_proc.sigv4 import sigv4_headers  # loaded with the policy: SIGNER_MODULES

    url = f"{provider.scheme}://{provider.authority}{outgoing.path}"
    return sigv4_headers(access_key.reveal(), secret_key.reveal(),
                         token.reveal() if token else None,
                         provider.options.get("region", ""), "bedrock", url, outgoing.body,
                         {"content-type": outgoing.content_type})


# anthropic-version is not a credential: the translator sets it from the provider's options.
# The kinds whose credential is their API key in a header: (header, prefix before the key).
# Envoy's own admission (control_plane/compiler/lane.py) sets these too.
KEY_HEADERS: Mapping[str, tuple[str, str]] = {
    "openai": ("authorization", "Bearer "),
    "anthropic": ("x-api-key", ""),
    "azure-openai": ("api-key", ""),
    "gemini": ("x-goog-api-key", ""),
}
# Kinds whose credential needs a library slow to import (botocore's signer: a fifth of a worker's
# start-up): loaded only for a policy that has such a provider, off the event loop, when its
# view is built (ext_proc/view.py), never by the first request.
SIGNER_MODULES: Mapping[str, str] = {"bedrock": "ext_proc.sigv4"}
CREDENTIALS: dict[str, Credential] = {
    **{kind: _key_header(*header) for kind, header in KEY_HEADERS.items()},
    "vertex": _service_account,
    "bedrock": _sigv4,
}


def credential_headers(provider: ProviderView, outgoing: Outgoing) -> Mapping[str, str]:
    credential = CREDENTIALS.get(provider.kind)
    return {} if credential is None else credential(provider, outgoing)

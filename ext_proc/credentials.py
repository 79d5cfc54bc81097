"""How each backend kind carries its credential, and which headers must never leak.

Envoy reuses one header map for every attempt of a request, so each attempt removes every
credential header any backend uses before adding its own: attempt 2 must not carry attempt 1's
key, and no provider may see the client's gateway key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ext_proc.secrets import Secret

CREDENTIAL_HEADERS = frozenset({
    "authorization", "x-api-key", "api-key", "x-goog-api-key",
    "x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "proxy-authorization",
})

CredentialHeaders = Callable[[Secret], Mapping[str, str]]


def _bearer(secret: Secret) -> Mapping[str, str]:
    return {"authorization": f"Bearer {secret.reveal()}"}


def _x_api_key(secret: Secret) -> Mapping[str, str]:
    return {"x-api-key": secret.reveal()}


# anthropic-version is not a credential: the translator sets it from the provider's options.
CREDENTIALS: dict[str, CredentialHeaders] = {
    "openai": _bearer,
    "anthropic": _x_api_key,
}


def credential_headers(kind: str, secret: Secret | None) -> Mapping[str, str]:
    if secret is None or kind not in CREDENTIALS:
        return {}
    return CREDENTIALS[kind](secret)

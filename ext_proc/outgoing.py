"""The headers that send a request to one provider: its path, host, length and credential."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ext_proc.credentials import CREDENTIAL_HEADERS, Outgoing, credential_headers
from ext_proc.translators.base import UpstreamRequest

if TYPE_CHECKING:
    from ext_proc.view import ProviderView

# Never forwarded as the client sent them: its gateway key, and its accept-encoding (the
# reply is read for its usage, so it must come uncompressed).
DROPPED_HEADERS = CREDENTIAL_HEADERS | {"accept-encoding"}
JSON_CONTENT_TYPE = "application/json"


def provider_headers(provider: ProviderView, upstream: UpstreamRequest, length: int,
                     sent: bytes | None) -> dict[str, str]:
    """`sent` is the body as the provider receives it, None when it goes unread (no
    credential that signs the body belongs to a provider that takes one unread). Raises
    CredentialUnavailable."""
    headers = {
        ":path": upstream.path,
        ":authority": provider.authority,
        "content-length": str(length),
        "content-type": JSON_CONTENT_TYPE,
        **upstream.headers,
    }
    headers.update(credential_headers(provider, Outgoing(
        upstream.path, sent or b"", headers["content-type"])))
    return headers

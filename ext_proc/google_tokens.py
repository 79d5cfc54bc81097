"""OAuth2 access tokens of a Google service account (Vertex AI), cached in the worker's view.

Minting a token is a blocking HTTPS call to the account's token_uri, so it runs in a thread:
once when the policy version is applied, then in the background whenever the cached token
nears its expiry. A gRPC handler only ever reads the cache.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC
from typing import Any

import orjson
import structlog
import urllib3
from google.auth.exceptions import GoogleAuthError
from google.auth.transport.urllib3 import Request
from google.oauth2 import service_account

from ext_proc.secrets import Secret

log = structlog.get_logger("google_tokens")

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN_S = 300.0
MINT_TIMEOUT_S = 10.0


class AccessTokens:
    def __init__(self, name: str, info: dict[str, Any],
                 clock: Callable[[], float] = time.time) -> None:
        self._name = name
        self._credentials = service_account.Credentials.from_service_account_info(
            info, scopes=[SCOPE])
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._refreshing: asyncio.Task[None] | None = None

    @classmethod
    def from_secret(cls, name: str, secret: Secret) -> AccessTokens:
        """Raises ValueError when the secret is not a service account's JSON key."""
        try:
            info = orjson.loads(secret.reveal())
        except orjson.JSONDecodeError:
            raise ValueError("the service account key is not JSON") from None
        if not isinstance(info, dict):
            raise ValueError("the service account key is not a JSON object")
        return cls(name, info)

    def current(self) -> str | None:
        """The cached token, or None when there is no valid one (yet)."""
        now = self._clock()
        if self._expires - now < REFRESH_MARGIN_S:
            self._refresh_in_background()
        return self._token if self._token and now < self._expires else None

    async def refresh(self) -> bool:
        """Mint a token now; False (and logged) when the token endpoint refused or failed."""
        try:
            token, expires = await asyncio.to_thread(self._mint)
        except (GoogleAuthError, urllib3.exceptions.HTTPError, OSError) as exc:
            log.error("service account token unavailable", provider=self._name,
                      reason=str(exc)[:200])
            return False
        self._token, self._expires = token, expires
        return True

    def _refresh_in_background(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._refreshing = loop.create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        await self.refresh()

    def _mint(self) -> tuple[str, float]:
        pool = urllib3.PoolManager(timeout=urllib3.Timeout(total=MINT_TIMEOUT_S), retries=False)
        self._credentials.refresh(Request(pool))
        expiry = self._credentials.expiry  # naive UTC
        expires = expiry.replace(tzinfo=UTC).timestamp() if expiry else self._clock() + 3000
        return str(self._credentials.token), expires

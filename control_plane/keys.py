"""Gateway keys: ``sb-`` + 32 random bytes, stored in the policy only as ``sha256:<hex>``.

The hash doubles as the key id in logs and usage records: it identifies a key without
revealing it, and the policy already contains it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

KEY_PREFIX = "sb-"
HASH_PREFIX = "sha256:"
_KEY_BYTES = 32


def key_hash(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def key_id(key: str) -> str:
    """The identifier logs and usage records show for a key (its policy hash)."""
    return key_hash(key)


def create_key(team: str) -> tuple[str, str]:
    """A new key and the hash to put under ``teams.<team>.keys``. Print the key once."""
    if not team:
        raise ValueError("team must not be empty")
    key = KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)
    return key, key_hash(key)


def is_key_hash(value: str) -> bool:
    digest = value.removeprefix(HASH_PREFIX)
    return (
        value.startswith(HASH_PREFIX)
        and len(digest) == 64
        and all(c in "0123456789abcdef" for c in digest)
    )


def verify_key(presented: str, hashes: Iterable[str]) -> str | None:
    """The matching hash, or None. Compares against every hash in constant time.

    The loop never stops early, so the time taken does not reveal which entry (if any)
    matched; the presented key is hashed first, so its length does not leak either.
    """
    candidate = key_hash(presented).encode()
    match: str | None = None
    for stored in hashes:
        if hmac.compare_digest(candidate, stored.encode()):
            match = stored
    return match

"""Joining a provider's base URL path with an API path."""

from __future__ import annotations

from urllib.parse import urlsplit


def join_path(base_url: str, suffix: str) -> str:
    return urlsplit(base_url).path.rstrip("/") + suffix

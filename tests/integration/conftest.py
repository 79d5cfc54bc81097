"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.provider_server import ProviderServer
from tests.support.ports import free_port
from tests.support.provider import running_provider


@pytest.fixture(scope="module")
def fake() -> Iterator[ProviderServer]:
    """The fake provider replaying recorded OpenAI and Anthropic replies, one per module."""
    with running_provider(free_port()) as server:
        yield server

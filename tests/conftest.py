"""Shared fixtures: fake upstreams and the real gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI("fake-openai").start()
    yield fake
    fake.stop()

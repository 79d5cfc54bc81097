"""Policy changes go live without a restart; a bad change is refused and the old one serves."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.support.gateway import Gateway, start_gateway

pytestmark = pytest.mark.integration

BEFORE = """
providers:
  alpha: {{kind: openai, base_url: "{alpha}"}}
models:
  steady: {{targets: [{{provider: alpha}}]}}
"""
AFTER = BEFORE + """
  fresh: {{targets: [{{provider: alpha, model: fresh-upstream}}]}}
"""
BROKEN = """
providers:
  alpha: {kind: openai, base_url: "http://127.0.0.1:1/v1"}
models:
  steady: {targets: [{provider: alpha}]}
  orphan: {targets: [{provider: nowhere}]}
"""


@pytest.fixture
def gateway(fake_openai: FakeOpenAI, tmp_path: Path) -> Iterator[Gateway]:
    gw = start_gateway(BEFORE.format(alpha=fake_openai.base_url), tmp_path)
    yield gw
    gw.stop()


def _chat(gateway: Gateway, model: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10, json={
        "model": model, "messages": [{"role": "user", "content": "hi"}]})


def test_an_edit_is_served_within_3s_and_no_request_fails_meanwhile(
        gateway: Gateway, fake_openai: FakeOpenAI) -> None:
    statuses: list[int] = []
    stop = threading.Event()

    def steady_traffic() -> None:
        deadline = time.monotonic() + 15
        with httpx.Client(timeout=10) as client:
            while not stop.is_set() and time.monotonic() < deadline:
                statuses.append(client.post(f"{gateway.url}/v1/chat/completions", json={
                    "model": "steady", "messages": [{"role": "user", "content": "hi"}],
                }).status_code)

    traffic = threading.Thread(target=steady_traffic)
    traffic.start()
    try:
        time.sleep(0.5)
        assert _chat(gateway, "fresh").status_code == 404
        edited_at = time.monotonic()
        gateway.write_policy(AFTER.format(alpha=fake_openai.base_url))
        while _chat(gateway, "fresh").status_code != 200:
            assert time.monotonic() - edited_at < 3.0, "edit not live within 3 s"
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        stop.set()
        traffic.join()
    assert len(statuses) > 20
    assert set(statuses) == {200}
    assert fake_openai.received[-1].body["model"] in ("fresh-upstream", "steady")
    assert any(r.body["model"] == "fresh-upstream" for r in fake_openai.received)


def test_a_broken_edit_is_refused_with_file_and_line_and_the_old_policy_serves(
        gateway: Gateway) -> None:
    version = gateway.status()["policy"]["version"]  # type: ignore[index]
    gateway.write_policy(BROKEN)
    deadline = time.monotonic() + 5
    while not gateway.status()["policy"]["last_error"]:  # type: ignore[index]
        assert time.monotonic() < deadline, "broken policy not noticed"
        time.sleep(0.1)
    policy = gateway.status()["policy"]
    assert policy["version"] == version  # type: ignore[index]
    [error] = policy["last_error"]  # type: ignore[index]
    assert error == (f"{gateway.policy_path}:6: models.orphan.targets[0].provider: "
                     "unknown provider 'nowhere' (defined: alpha)")
    assert _chat(gateway, "steady").status_code == 200
    assert "policy rejected" in gateway.log()

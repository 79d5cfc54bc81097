"""`switchboard up` with no policy: the README's first command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def test_up_without_a_policy_serves_the_mock_and_stops_cleanly_on_ctrl_c(
        tmp_path: Path) -> None:
    ports = [free_port() for _ in range(4)]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "control_plane", "up", "--listener-port", str(ports[0]),
         "--xds-port", str(ports[1]), "--admin-port", str(ports[2]),
         "--envoy-admin-port", str(ports[3])],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{ports[0]}/v1", api_key="unused",
                               max_retries=0, timeout=10)
        deadline = time.monotonic() + 40
        while True:
            try:
                models = [m.id for m in client.models.list()]
                reply = client.chat.completions.create(
                    model="mock", messages=[{"role": "user", "content": "ping"}])
                break
            except (openai.APIConnectionError, openai.InternalServerError,
                    openai.NotFoundError):
                assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
                time.sleep(0.2)
        assert models == ["mock"]
        assert reply.choices[0].message.content == "This is a mock reply from Switchboard to: ping"
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(20)
    assert code == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{ports[0]}/v1/models", timeout=2)
    assert subprocess.run(["pgrep", "-f", f"--base-id {ports[3]}"],
                          capture_output=True, check=False).stdout == b""

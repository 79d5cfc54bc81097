"""The gateway's own parts failing under load: a worker killed, the control plane restarted,
a config Envoy refuses. Real Envoy, real workers, real control plane."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.fault_server import FaultServer
from tests.support.components import Components, wait_until
from tests.support.gateway import Gateway, start_gateway
from tests.support.processes import children, worker_pids

pytestmark = pytest.mark.integration

POLICY = """
providers:
  upstream: {{kind: openai, base_url: "{upstream}/v1"}}
models:
  steady: {{targets: [{{provider: upstream}}]}}
"""
# Valid policy, but its HTTPS provider needs the CA bundle, which this gateway points at a
# file that does not exist: Envoy refuses the cluster.
REFUSED_BY_ENVOY = """
  secure: {targets: [{provider: tls}]}
  tls: {kind: openai, base_url: "https://localhost:9/v1"}
"""
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultServer]:
    fake = FaultServer("upstream").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(upstream: FaultServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(POLICY.format(upstream=upstream.base_url),
                       tmp_path_factory.mktemp("components"),
                       extra_args=("--ca-bundle", "/nonexistent/ca-bundle.pem"))
    yield gw
    gw.stop()


class Traffic:
    """Steady requests from a thread, each status recorded (0: no answer at all)."""

    def __init__(self, url: str, model: str = "steady", path: str = "/v1/chat/completions",
                 pause_s: float = 0.01) -> None:
        self.statuses: list[int] = []
        self._url, self._model, self._path, self._pause = url, model, path, pause_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    status = client.post(f"{self._url}{self._path}", json={
                        "model": self._model, "max_tokens": 5, "messages": HELLO}).status_code
                except httpx.TransportError:
                    status = 0
                self.statuses.append(status)
                time.sleep(self._pause)


def _envoy_pid(gateway: Gateway) -> int:
    [pid] = [p for p, cmd in children(gateway.process.pid).items() if "envoy" in cmd.split()[0]]
    return pid


def test_a_killed_worker_is_restarted_and_serves_within_2s_without_restarting_envoy(
        gateway: Gateway) -> None:
    envoy = _envoy_pid(gateway)
    before = worker_pids(gateway.process.pid)
    with Traffic(gateway.url) as traffic:
        time.sleep(0.3)
        killed_at = time.monotonic()
        os.kill(before["ext-proc-0"], signal.SIGKILL)
        restarted = wait_until(lambda: worker_pids(gateway.process.pid).get("ext-proc-0")
                          not in (None, before["ext-proc-0"]), 2.0)
        new_pid = worker_pids(gateway.process.pid)["ext-proc-0"]
        log_start = len(gateway.log())
        # Serving again: the new process logs attempts of its own (round-robin reaches it).
        wait_until(lambda: '"worker":"ext-proc-0"' in gateway.log()[log_start:]
              and '"event":"attempt"' in gateway.log()[log_start:], 2.0 - restarted)
        served_after = time.monotonic() - killed_at
        time.sleep(0.3)
    assert served_after < 2.0
    assert new_pid != before["ext-proc-0"]
    assert _envoy_pid(gateway) == envoy
    # Attempts already on the killed worker fail; nothing else does.
    assert traffic.statuses.count(200) > 20
    assert set(traffic.statuses) <= {200, 503}
    assert traffic.statuses.count(503) <= 2


def test_a_hung_worker_is_killed_and_replaced_while_the_other_serves(gateway: Gateway) -> None:
    """Stopped (SIGSTOP): alive, its socket bound, answering nothing. The pool's pings go
    unanswered (3 in a row, each given 2 s, 1 s apart), so it is killed and restarted."""
    before = worker_pids(gateway.process.pid)
    os.kill(before["ext-proc-1"], signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        wait_until(lambda: worker_pids(gateway.process.pid).get("ext-proc-1")
                   not in (None, before["ext-proc-1"]), 20.0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(before["ext-proc-1"], signal.SIGCONT)
    replaced_after = time.monotonic() - stopped_at
    assert replaced_after > 3.0  # three missed pings, not sooner
    assert '"event":"worker stopped answering; killing it"' in gateway.log()
    with Traffic(gateway.url) as traffic:
        time.sleep(1.0)
    assert set(traffic.statuses) == {200}


@pytest.mark.parametrize(("path", "schema_key"), [
    ("/v1/chat/completions", "error"), ("/v1/messages", "type")])
def test_an_attempt_whose_worker_dies_fails_closed_with_a_503_in_the_clients_schema(
        gateway: Gateway, upstream: FaultServer, path: str, schema_key: str) -> None:
    pids = worker_pids(gateway.process.pid)
    result: list[httpx.Response] = []
    request = threading.Thread(target=lambda: result.append(httpx.post(
        f"{gateway.url}{path}", timeout=10, headers={"x-fault-upstream": "slow:1"},
        json={"model": "steady", "max_tokens": 5, "messages": HELLO})))
    request.start()
    wait_until(lambda: len(upstream.received) > 0 and upstream.received[-1].headers.get(
        "x-fault-upstream") == "slow:1", 2.0)
    for pid in pids.values():  # whichever worker holds the attempt
        os.kill(pid, signal.SIGKILL)
    request.join()
    [response] = result
    assert response.status_code == 503
    body = response.json()
    assert schema_key in body
    message = body["error"]["message"]
    assert "processor" in message.lower() or "ext_proc" in message.lower(), message
    wait_until(lambda: httpx.post(f"{gateway.url}/v1/chat/completions", timeout=5, json={
        "model": "steady", "messages": HELLO}).status_code == 200, 3.0)
    upstream.received.clear()


def test_a_hung_worker_times_out_with_a_504_in_the_clients_schema(gateway: Gateway) -> None:
    pids = worker_pids(gateway.process.pid)
    for pid in pids.values():
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = httpx.post(f"{gateway.url}/v1/messages", timeout=15, json={
            "model": "steady", "max_tokens": 5, "messages": HELLO})
        waited = time.monotonic() - started
    finally:
        for pid in pids.values():
            os.kill(pid, signal.SIGCONT)
    assert response.status_code == 504
    assert response.json()["error"]["message"] == (
        "The gateway's request processor did not answer in time; try again.")
    assert 5 <= waited < 7  # the upstream ext_proc's message_timeout


def test_a_config_envoy_refuses_is_reported_and_the_old_one_serves(gateway: Gateway) -> None:
    version = gateway.status()["policy"]["version"]  # type: ignore[index]
    policy = gateway.policy_path.read_text()
    models, providers = REFUSED_BY_ENVOY.strip("\n").split("\n")
    gateway.write_policy(policy.replace("models:\n", f"models:\n{models}\n")
                         .replace("providers:\n", f"providers:\n{providers}\n"))

    def envoy_nacked() -> bool:
        clients = gateway.status()["clients"]
        assert isinstance(clients, list)
        return any(c["nacked"] for c in clients if c["node"].startswith("switchboard-"))

    wait_until(envoy_nacked, 5.0)
    status = gateway.status()
    assert status["policy"]["version"] != version  # type: ignore[index]
    [envoy] = [c for c in status["clients"] if c["node"].startswith("switchboard-")]  # type: ignore[union-attr]
    [(type_url, nack)] = envoy["nacked"].items()
    assert type_url.endswith("Cluster")
    assert "/nonexistent/ca-bundle.pem" in nack["error"]
    assert nack["version"] == status["policy"]["version"]  # type: ignore[index]
    logged = [line for line in gateway.log().splitlines() if "config rejected by client" in line]
    assert logged and "Invalid path: /nonexistent/ca-bundle.pem" in logged[-1]
    assert httpx.post(f"{gateway.url}/v1/chat/completions", timeout=5, json={
        "model": "steady", "messages": HELLO}).status_code == 200


@pytest.fixture
def components(upstream: FaultServer, tmp_path: Path) -> Iterator[Components]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(upstream=upstream.base_url))
    parts = Components(tmp_path, policy)
    try:
        parts.start_all()
        yield parts
    finally:
        parts.stop()


def test_the_control_plane_restarts_under_load_and_nothing_fails(
        components: Components) -> None:
    with Traffic(components.url) as traffic:
        time.sleep(0.3)
        control_plane = components.processes["control-plane"]
        control_plane.send_signal(signal.SIGTERM)
        control_plane.wait(10)
        down_from = len(traffic.statuses)
        time.sleep(1.5)  # Envoy and the workers on their own, on the last policy
        served_while_down = len(traffic.statuses) - down_from
        components.start_control_plane()
        resynced = wait_until(components.all_acked, 10)
        # The resumed streams carry new policy again.
        components.policy.write_text(components.policy.read_text() + (
            "  fresh: {targets: [{provider: upstream, model: fresh-model}]}\n"))
        wait_until(lambda: httpx.post(f"{components.url}/v1/chat/completions", timeout=5, json={
            "model": "fresh", "messages": HELLO}).status_code == 200, 5)
        time.sleep(0.3)
    assert served_while_down > 10
    assert resynced < 10
    assert len(traffic.statuses) > 50
    assert set(traffic.statuses) == {200}

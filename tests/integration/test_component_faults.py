"""The gateway's own parts failing under load: a worker killed, the control plane restarted,
a config Envoy refuses. Real Envoy, real workers, real control plane."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.fault_server import FaultServer
from tests.support.gateway import Gateway, start_gateway
from tests.support.ports import free_port
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


def _wait(predicate: object, timeout_s: float) -> float:
    """Seconds until predicate() holds; fails the test past timeout_s."""
    assert callable(predicate)
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout_s, "condition not met in time"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_killed_worker_is_restarted_and_serves_within_2s_without_restarting_envoy(
        gateway: Gateway) -> None:
    envoy = _envoy_pid(gateway)
    before = worker_pids(gateway.process.pid)
    with Traffic(gateway.url) as traffic:
        time.sleep(0.3)
        killed_at = time.monotonic()
        os.kill(before["ext-proc-0"], signal.SIGKILL)
        restarted = _wait(lambda: worker_pids(gateway.process.pid).get("ext-proc-0")
                          not in (None, before["ext-proc-0"]), 2.0)
        new_pid = worker_pids(gateway.process.pid)["ext-proc-0"]
        log_start = len(gateway.log())
        # Serving again: the new process logs attempts of its own (round-robin reaches it).
        _wait(lambda: '"worker":"ext-proc-0"' in gateway.log()[log_start:]
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
    _wait(lambda: len(upstream.received) > 0 and upstream.received[-1].headers.get(
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
    _wait(lambda: httpx.post(f"{gateway.url}/v1/chat/completions", timeout=5, json={
        "model": "steady", "messages": HELLO}).status_code == 200, 3.0)
    upstream.received.clear()


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

    _wait(envoy_nacked, 5.0)
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


class Components:
    """The control plane, the worker pool and Envoy as separate processes, as the chart runs
    them, so the control plane can be stopped and started on its own."""

    def __init__(self, work: Path, policy: Path) -> None:
        self.work, self.policy = work, policy
        self.listener, self.xds, self.admin, self.envoy_admin = (free_port() for _ in range(4))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener}"

    def start(self, name: str, *args: str) -> None:
        log = (self.work / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "control_plane", *args], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "SWITCHBOARD_WORK_DIR": str(self.work)},
            cwd=Path(__file__).parents[2])

    def start_control_plane(self) -> None:
        self.start("control-plane", "control-plane", "--policy", str(self.policy),
                   "--listen-host", "127.0.0.1", "--listener-host", "127.0.0.1",
                   "--listener-port", str(self.listener), "--xds-port", str(self.xds),
                   "--admin-port", str(self.admin))

    def status(self) -> dict[str, object]:
        result: dict[str, object] = httpx.get(f"http://127.0.0.1:{self.admin}/status",
                                              timeout=2).json()
        return result

    def all_acked(self, count: int = 3) -> bool:
        try:
            status = self.status()
        except httpx.HTTPError:
            return False
        version = status["policy"]["version"]  # type: ignore[index]
        clients = status["clients"]
        assert isinstance(clients, list)
        return len(clients) == count and all(
            set(c["acked"].values()) == {version} for c in clients)

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def components(upstream: FaultServer, tmp_path: Path) -> Iterator[Components]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(upstream=upstream.base_url))
    parts = Components(tmp_path, policy)
    try:
        parts.start_control_plane()
        sockets = tmp_path / "sockets"
        parts.start("ext-proc", "ext-proc", "--workers", "2", "--socket-dir", str(sockets),
                    "--xds-address", f"127.0.0.1:{parts.xds}")
        _wait(lambda: len(list(sockets.glob("*.sock"))) == 2, 30)
        parts.start("envoy", "envoy", "--xds-address", f"127.0.0.1:{parts.xds}",
                    "--ext-proc-socket-dir", str(sockets), "--workers", "2",
                    "--admin-port", str(parts.envoy_admin))
        _wait(parts.all_acked, 30)
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
        resynced = _wait(components.all_acked, 10)
        # The resumed streams carry new policy again.
        components.policy.write_text(components.policy.read_text() + (
            "  fresh: {targets: [{provider: upstream, model: fresh-model}]}\n"))
        _wait(lambda: httpx.post(f"{components.url}/v1/chat/completions", timeout=5, json={
            "model": "fresh", "messages": HELLO}).status_code == 200, 5)
        time.sleep(0.3)
    assert served_while_down > 10
    assert resynced < 10
    assert len(traffic.statuses) > 50
    assert set(traffic.statuses) == {200}

"""Prometheus metrics through the real gateway: requests of known usage through Envoy and two
workers, then the pool's /metrics must show their exact tokens and cost, summed over both
workers, with the semantic-convention names and labels; budgets and admission are counted too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from control_plane.keys import create_key
from ext_proc.pool_metrics import METRICS_DIR_ENV, summed
from tests.fakes.provider_server import ProviderServer
from tests.support.gateway import Gateway, start_gateway
from tests.support.processes import worker_pids

pytestmark = pytest.mark.integration

KEY, KEY_HASH = create_key("search")
CHAT = [{"role": "user", "content": "Hello there"}]

POLICY = """
providers:
  oai: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1"}}
  demo: {{kind: mock}}
models:
  gpt: {{targets: [{{provider: oai, model: gpt-4o-mini}}]}}
  mock-unpriced: {{targets: [{{provider: demo, model: unpriced}}]}}
  mock-capped: {{targets: [{{provider: demo, model: capped}}]}}
prices:
  oai/gpt-4o-mini: {{input_per_mtok: 2, output_per_mtok: 8, cached_read_per_mtok: 1}}
  demo/capped: {{input_per_mtok: 1000, output_per_mtok: 1000}}
teams:
  search: {{keys: [{key}], models: [gpt, mock-unpriced, mock-capped]}}
budgets:
  gpt-watch: {{limit_usd: 0, period: day, match: {{model: gpt}}, on_exceed: warn}}
  capped: {{limit_usd: 0, period: day, match: {{model: mock-capped}}}}
"""

# The fake's OpenAI reply: 1200 prompt tokens (1024 cached) + 7 completion tokens, and its
# stream: 1100 (1024 cached) + 6; at $2 / $1 cached / $8 per million tokens.
PLAIN = (1200, 1024, 7, Decimal(176 * 2 + 1024 * 1 + 7 * 8) / 10**6)
STREAM = (1100, 1024, 6, Decimal(76 * 2 + 1024 * 1 + 6 * 8) / 10**6)
GPT = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai",
       "gen_ai_request_model": "gpt", "gen_ai_response_model": "gpt-4o-mini",
       "switchboard_provider": "oai", "team": "search"}
MAX_REQUESTS = 20


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake: ProviderServer) -> Iterator[Gateway]:
    gateway = start_gateway(POLICY.format(port=fake.port, key=KEY_HASH),
                            tmp_path_factory.mktemp("metrics"))
    yield gateway
    gateway.stop()


@pytest.fixture
def oai(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=10)


def value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def wait_for(gateway: Gateway, name: str, expected: float, **labels: str) -> str:
    """The exposition once `name{labels}` reaches `expected`: attempts are counted when their
    ext_proc stream ends, which may be just after the client has its reply."""
    deadline = time.monotonic() + 10
    while True:
        text = gateway.metrics()
        if value(text, name, **labels) == expected:
            return text
        assert time.monotonic() < deadline, f"{name}{labels} = {value(text, name, **labels)}"
        time.sleep(0.05)


def per_worker_attempts(gateway: Gateway) -> dict[str, float]:
    """Each worker's own count of ok gpt attempts, read from its published snapshot."""
    counts: dict[str, float] = {}
    for node, pid in worker_pids(gateway.process.pid).items():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        directory = next(e.split(b"=", 1)[1].decode() for e in environ
                         if e.startswith(f"{METRICS_DIR_ENV}=".encode()))
        published = Path(directory) / f"worker-{pid}.json"
        counts[node] = sum(
            s.value for m in summed([published.read_bytes()] if published.exists() else [])
            for s in m.samples
            if s.name == "switchboard_attempts_total"
            and s.labels == {**GPT, "outcome": "ok", "http_response_status_code": "200"})
    return counts


def test_token_usage_cost_and_latency_summed_over_both_workers(oai: openai.OpenAI,
                                                                gateway: Gateway) -> None:
    ok = {**GPT, "outcome": "ok", "http_response_status_code": "200"}
    stream = oai.chat.completions.create(model="gpt", messages=CHAT, stream=True)  # type: ignore[arg-type]
    chunks: list[Any] = list(stream)
    assert chunks[-1].choices[0].finish_reason == "stop"
    plain = 0
    while True:  # until each worker has served some
        raw = oai.chat.completions.with_raw_response.create(model="gpt", messages=CHAT)  # type: ignore[arg-type]
        assert Decimal(raw.headers["x-switchboard-cost-usd"]) == PLAIN[3]
        plain += 1
        wait_for(gateway, "switchboard_attempts_total", plain + 1, **ok)
        workers = per_worker_attempts(gateway)
        if len(workers) == 2 and all(workers.values()):
            break
        assert plain < MAX_REQUESTS, f"one worker served every attempt: {workers}"
        # Envoy picks a worker round-robin for each call, and a request makes two (admission,
        # then the attempt): one-at-a-time requests can send every attempt to the same worker.
        # A refused key makes one call only, which moves the attempts to the other worker.
        with pytest.raises(openai.AuthenticationError):
            oai.chat.completions.create(model="gpt", messages=CHAT,  # type: ignore[arg-type]
                                        extra_headers={"authorization": "Bearer sb-wrong"})
    attempts = plain + 1
    assert sum(per_worker_attempts(gateway).values()) == attempts

    # Admission may have run on the other worker, whose snapshot can be a second behind its
    # attempts'; once these counts are in, every count of these requests is.
    wait_for(gateway, "switchboard_admissions_total", attempts, team="search",
             gen_ai_request_model="gpt", outcome="admitted")
    text = wait_for(gateway, "switchboard_budget_exceeded_total", attempts, budget="gpt-watch",
                    action="warned")
    tokens = "gen_ai_client_token_usage"
    assert value(text, f"{tokens}_sum", **GPT, gen_ai_token_type="input") == (
        plain * PLAIN[0] + STREAM[0])
    assert value(text, f"{tokens}_sum", **GPT, gen_ai_token_type="output") == (
        plain * PLAIN[2] + STREAM[2])
    assert value(text, f"{tokens}_count", **GPT, gen_ai_token_type="input") == attempts
    assert value(text, f"{tokens}_bucket", **GPT, gen_ai_token_type="output", le="16.0") == (
        attempts)
    assert value(text, "switchboard_tokens_detail_total", **GPT,
                 gen_ai_token_type="cache_read") == plain * PLAIN[1] + STREAM[1]
    cost = value(text, "switchboard_cost_usd_total", **GPT)
    assert cost == pytest.approx(float(plain * PLAIN[3] + STREAM[3]), rel=1e-12)
    assert value(text, "gen_ai_client_operation_duration_seconds_count", **GPT,
                 error_type="") == attempts
    assert value(text, "gen_ai_client_operation_time_to_first_chunk_seconds_count", **GPT) == 1
    assert value(text, "switchboard_unpriced_attempts_total", **GPT) is None
    assert value(text, "switchboard_admissions_total", team="search",
                 gen_ai_request_model="gpt", outcome="admitted") == attempts
    assert value(text, "switchboard_budget_exceeded_total", budget="gpt-watch",
                 action="warned") == attempts
    assert value(text, "switchboard_ext_proc_workers", state="running") == 2
    assert "request_id" not in text and "key_id" not in text and KEY_HASH not in text
    assert httpx.get(f"http://127.0.0.1:{gateway.ext_proc_health_port}/healthz").is_success


def test_envoys_own_statistics_are_served_with_the_workers_metrics(
        oai: openai.OpenAI, gateway: Gateway) -> None:
    """One scrape target per gateway: Envoy's admin stays on localhost, and the workers'
    /metrics appends its statistics (only those that ever changed)."""
    oai.chat.completions.create(model="gpt", messages=CHAT)  # type: ignore[arg-type]
    text = httpx.get(f"http://127.0.0.1:{gateway.ext_proc_health_port}/metrics",
                     timeout=10).text
    assert value(text, "switchboard_ext_proc_workers", state="running") == 2
    completed = re.search(r'^envoy_http_downstream_rq_completed\{[^}]*\} (\d+)', text, re.M)
    assert completed is not None and int(completed.group(1)) >= 1
    assert re.search(r"^# TYPE envoy_cluster_upstream_rq_total counter$", text, re.M)


def test_unpriced_attempts_and_blocking_budgets(oai: openai.OpenAI, gateway: Gateway) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="mock-unpriced", messages=CHAT)  # type: ignore[arg-type]
    assert "x-switchboard-cost-usd" not in raw.headers
    unpriced = {**GPT, "gen_ai_provider_name": "mock", "gen_ai_request_model": "mock-unpriced",
                "gen_ai_response_model": "unpriced", "switchboard_provider": "demo"}
    text = wait_for(gateway, "switchboard_unpriced_attempts_total", 1, **unpriced)
    assert value(text, "switchboard_cost_usd_total", **unpriced) is None
    with pytest.raises(openai.RateLimitError, match="Budget 'capped'"):
        oai.chat.completions.create(model="mock-capped", messages=CHAT)  # type: ignore[arg-type]
    text = wait_for(gateway, "switchboard_budget_exceeded_total", 1, budget="capped",
                    action="blocked")
    assert value(text, "switchboard_admissions_total", team="search",
                 gen_ai_request_model="mock-capped", outcome="budget_exceeded") == 1


def test_the_control_plane_serves_its_own_metrics(gateway: Gateway) -> None:
    text = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/metrics", timeout=5).text
    version = gateway.status()["policy"]["version"]  # type: ignore[index]
    assert value(text, "switchboard_policy_info", version=str(version)) == 1
    assert (value(text, "switchboard_xds_clients", state="current") or 0) >= 3  # Envoy, 2 workers

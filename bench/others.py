"""Other gateways in front of the same fake upstream, when they are installed.

LiteLLM's proxy (`litellm` on PATH, or `--litellm PATH`): a model per OpenAI-schema scenario,
each routed to the fake's path for it, behind the master key LiteLLM requires.

Portkey's gateway (`--portkey PATH`, the `gateway` command of npm's `@portkey-ai/gateway`):
routed per request by its headers (provider, custom host), so it serves the OpenAI clients'
scenarios of whole replies, translated ones too. It listens on every interface and takes no
host option: `loopback.cjs`, preloaded into its Node.js, gives its listener the loopback
address.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from bench.datapath import (
    CHAT_PATH,
    SCENARIOS,
    Scenario,
    Target,
    free_port,
    http_request,
    stop_process,
)
from bench.procstat import children

MASTER_KEY = "sk-bench-litellm-master"
START_TIMEOUT_S = 180.0
MESSAGES_PATH = "/messages"
LOOPBACK = Path(__file__).with_name("loopback.cjs")


def _wait_started(process: subprocess.Popen[bytes], health_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while http_request(health_url)[0] != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{log.stem} did not start:\n{log.read_text()}")
        time.sleep(0.5)


def litellm_binary(given: str | None) -> str | None:
    return given or shutil.which("litellm")


def _openai_schema(scenario: Scenario) -> bool:
    """What LiteLLM serves as plain Envoy does: OpenAI's schema, untranslated."""
    return scenario.plain_path.endswith(CHAT_PATH) and scenario.client == "openai"


def litellm_config(upstream_port: int, scenarios: list[Scenario]) -> dict[str, object]:
    models = {s.model: s.plain_path.removesuffix(CHAT_PATH) for s in scenarios
              if _openai_schema(s)}
    return {"model_list": [
        {"model_name": model, "litellm_params": {
            "model": f"openai/{model}", "api_key": "sk-fake",
            "api_base": f"http://127.0.0.1:{upstream_port}{base}"}}
        for model, base in models.items()],
        "general_settings": {"master_key": MASTER_KEY}}


@contextlib.contextmanager
def litellm(binary: str, upstream_port: int, scenarios: list[Scenario], work: Path,
            workers: int) -> Iterator[Target]:
    config = work / "litellm.yaml"
    config.write_text(yaml.safe_dump(litellm_config(upstream_port, scenarios)))
    port = free_port()
    log = (work / "litellm.log").open("wb")
    process = subprocess.Popen(
        [binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
         "--num_workers", str(workers)],
        stdout=log, stderr=subprocess.STDOUT,
        # No fetching of its price list or telemetry from the internet: loopback only.
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"})
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_started(process, url + "/health/liveliness", work / "litellm.log")
        pids = {"litellm": process.pid, **{f"litellm-{i}": pid for i, pid in
                                            enumerate(children(process.pid))}}
        yield Target("litellm", url, pids, {"authorization": f"Bearer {MASTER_KEY}"},
                     {s.name: {} for s in scenarios if _openai_schema(s)})
    finally:
        stop_process(process)
        log.close()


def portkey_routes(upstream_port: int) -> dict[str, dict[str, str]]:
    """Each OpenAI client's scenario of whole replies: the provider whose schema the fake
    answers in, at the fake's base URL for it (Portkey appends `/chat/completions` or
    `/messages`). Not streams: Portkey 1.9.8 and 1.15.2 answer every stream with a 500 on
    Node.js 20 (`TypeError: immutable`, adding its headers to the provider's response)."""
    fake = f"http://127.0.0.1:{upstream_port}"
    routes = {}
    for scenario in SCENARIOS.values():
        if scenario.client != "openai" or scenario.stream:
            continue
        anthropic = scenario.plain_path.endswith(MESSAGES_PATH)
        base = scenario.plain_path.removesuffix(MESSAGES_PATH if anthropic else CHAT_PATH)
        routes[scenario.name] = {"x-portkey-provider": "anthropic" if anthropic else "openai",
                                 "x-portkey-custom-host": fake + base}
    return routes


@contextlib.contextmanager
def portkey(command: str, upstream_port: int, work: Path) -> Iterator[Target]:
    port = free_port()
    log = (work / "portkey.log").open("wb")
    process = subprocess.Popen(
        ["node", "--require", str(LOOPBACK), command, f"--port={port}", "--headless"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "NODE_ENV": "production"})
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_started(process, url + "/", work / "portkey.log")
        yield Target("portkey", url, {"portkey": process.pid},
                     {"authorization": "Bearer sk-fake"}, portkey_routes(upstream_port))
    finally:
        stop_process(process)
        log.close()

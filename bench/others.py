"""Other gateways in front of the same fake upstream, when they are installed.

LiteLLM's proxy (`litellm` on PATH, or `--litellm PATH`): a model per OpenAI-schema scenario,
each routed to the fake's path for it, behind the master key LiteLLM requires. Portkey's
gateway is not run: it binds every interface and takes no host option, and these benchmarks
stay on loopback.
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
    Scenario,
    Target,
    free_port,
    http_request,
    stop_process,
)
from bench.procstat import children

MASTER_KEY = "sk-bench-litellm-master"
START_TIMEOUT_S = 180.0


def litellm_binary(given: str | None) -> str | None:
    return given or shutil.which("litellm")


def litellm_config(upstream_port: int, scenarios: list[Scenario]) -> dict[str, object]:
    """The scenarios LiteLLM can serve as plain Envoy does: an OpenAI-schema path."""
    models = {s.model: s.plain_path.removesuffix(CHAT_PATH) for s in scenarios
              if s.plain_path.endswith(CHAT_PATH) and s.client == "openai"}
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
        deadline = time.monotonic() + START_TIMEOUT_S
        while http_request(url + "/health/liveliness")[0] != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"litellm did not start:\n{(work / 'litellm.log').read_text()}")
            time.sleep(0.5)
        pids = {"litellm": process.pid, **{f"litellm-{i}": pid for i, pid in
                                            enumerate(children(process.pid))}}
        yield Target("litellm", url, pids, {"authorization": f"Bearer {MASTER_KEY}"})
    finally:
        stop_process(process)
        log.close()

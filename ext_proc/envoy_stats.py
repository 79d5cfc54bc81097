"""Envoy's own statistics, served with the workers' metrics.

Envoy's admin interface stays on localhost (it can drain, reconfigure and quit the proxy), so
nothing outside the gateway pod can scrape it. The ext_proc container shares the pod's network
with Envoy: its /metrics appends what Envoy's admin serves at /stats/prometheus, and one scrape
target per gateway pod carries both (Envoy's names start with `envoy_`, ours with
`switchboard_`).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

# `usedonly`: statistics that ever changed; thousands of idle cluster counters otherwise.
STATS_PATH = "/stats/prometheus?usedonly"
TIMEOUT_S = 2.0


def admin_stats_url(admin_port: int, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{admin_port}{STATS_PATH}"


def envoy_stats(url: str) -> bytes:
    """Envoy's statistics in Prometheus text, or a comment saying why there are none (Envoy
    restarting): the workers' metrics are served either way. Blocks: call it in a thread."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            body: bytes = response.read()
    except (urllib.error.URLError, OSError) as exc:
        return f"# Envoy's statistics are unavailable: {exc}\n".encode()
    return body if body.endswith(b"\n") or not body else body + b"\n"


def with_envoy_stats(metrics: Callable[[], bytes],
                     url: str | None) -> Callable[[], bytes]:
    """`metrics`, followed by Envoy's statistics when `url` names its admin's."""
    if url is None:
        return metrics
    return lambda: metrics() + envoy_stats(url)

"""The data path: plain Envoy and Switchboard in front of the same fake upstream, loaded by wrk.

Runs are interleaved (plain, Switchboard, plain, Switchboard, ...) so that both see the same
background load, and results are reported as ratios against plain Envoy from the same run.
CPU seconds per request come from /proc/PID/stat of every process on the path; RSS from
/proc/PID/statm after each run. Everything listens on loopback and every run is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench import fakes
from bench.policy import PolicyShape, model_name
from bench.procstat import children, command_line, sample
from control_plane.envoy_process import envoy_binary
from control_plane.keys import key_hash
from ext_proc.ledgers import STATE_DIR_ENV

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Scenario:
    name: str
    plain_path: str  # the fake upstream's path, reached through plain Envoy
    model: str  # what Switchboard's client asks for, on /v1/chat/completions
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage
    client: str = "openai"  # the client's API: "openai" (chat completions) or "anthropic"

    def request(self) -> bytes:
        if self.client == "anthropic":
            return fakes.messages_request(self.model, self.stream)
        return fakes.chat_request(self.model, self.stream, self.include_usage)

    @property
    def client_path(self) -> str:
        return "/v1/messages" if self.client == "anthropic" else "/v1" + CHAT_PATH

    @property
    def answer(self) -> bytes:
        """What a whole answer through Switchboard must hold: a stream's end marker."""
        if self.client == "anthropic":
            return b"event: message_stop" if self.stream else b'"type":"message"'
        return b"data: [DONE]" if self.stream else b'"choices"'


SCENARIOS = {
    # The model is renamed for the provider: the worker reads and rewrites the body.
    "openai": Scenario("openai", fakes.OPENAI_BASE + "/chat/completions", "bench-openai"),
    # The provider knows the model by the client's name: the body is forwarded unread.
    "passthrough": Scenario("passthrough", fakes.OPENAI_BASE + "/chat/completions",
                            "bench-passthrough"),
    "translated": Scenario("translated", fakes.ANTHROPIC_BASE + "/v1/messages",
                           "bench-anthropic"),
    "stream": Scenario("stream", fakes.STREAM_BASE + "/chat/completions", "bench-stream",
                       stream=True),
    # The client asks for the usage chunk itself: the stream can be forwarded unread.
    "stream-usage": Scenario("stream-usage", fakes.STREAM_BASE + "/chat/completions",
                             "bench-stream", stream=True, include_usage=True),
    # An Anthropic Messages client of a model served in OpenAI's schema.
    "anthropic-client": Scenario("anthropic-client", fakes.OPENAI_BASE + "/chat/completions",
                                 "bench-openai-for-anthropic", client="anthropic"),
    # An OpenAI client's stream, with its usage, from an Anthropic-schema stream.
    "translated-stream": Scenario("translated-stream",
                                  fakes.ANTHROPIC_STREAM_BASE + "/v1/messages",
                                  "bench-anthropic-stream", stream=True, include_usage=True),
    # An Anthropic Messages client's stream, from an OpenAI-schema stream.
    "anthropic-client-stream": Scenario("anthropic-client-stream",
                                        fakes.STREAM_BASE + "/chat/completions",
                                        "bench-stream-for-anthropic", stream=True,
                                        client="anthropic"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS),
                        choices=list(SCENARIOS))
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--rounds", type=int, default=2, help="runs per target, interleaved")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2, help="ext_proc worker processes")
    parser.add_argument("--filler-models", type=int, default=100,
                        help="models in the policy besides the three the load asks for")
    parser.add_argument("--full-path", action="store_true",
                        help="add teams, gateway keys and budgets to the policy")
    parser.add_argument("--no-reply-cost", action="store_true",
                        help="gateway.reply_cost: false: unchanged requests are forwarded by "
                             "Envoy alone after admission")
    parser.add_argument("--envoy-admission", action="store_true",
                        help="gateway.admission: envoy: Envoy admits requests itself (with "
                             "--no-reply-cost, forwarding them alone with no worker call)")
    parser.add_argument("--log-level", default="info",
                        help="Switchboard's log level (info logs one line per attempt)")
    parser.add_argument("--litellm", default=None,
                        help="LiteLLM's `litellm` command (default: on PATH); run alongside "
                             "when found")
    parser.add_argument("--litellm-workers", type=int, default=2)
    parser.add_argument("--portkey", default=None,
                        help="Portkey's gateway command (npm @portkey-ai/gateway: "
                             "node_modules/.bin/gateway), run alongside when given")
    parser.add_argument("--label", default="", help="what this run measures (recorded)")
    parser.add_argument("--name", default="datapath", help="results file: results/NAME.json")


CHAT_PATH = "/chat/completions"

# The key the load sends on a full-path run; its hash is the bench team's only key.
BENCH_KEY = "sb-bench-datapath-key"


def datapath_policy(upstream_port: int, filler: int, full_path: bool,
                    reply_cost: bool = True, envoy_admission: bool = False) -> str:
    base = f"http://127.0.0.1:{upstream_port}"
    shape = PolicyShape(models=filler, openai_url=base + fakes.OPENAI_BASE,
                        anthropic_url=base + fakes.ANTHROPIC_BASE, full_path=full_path)
    from bench.policy import generate

    policy = yaml.safe_load(generate(shape))
    if full_path:
        # Every request authenticates, reserves on the team's and the org's budget and is
        # priced, so each provider needs a price (a custom base_url has no list price).
        policy["teams"] = {"bench": {"keys": [key_hash(BENCH_KEY)],
                                     "budget": {"limit_usd": 1_000_000, "period": "month"}}}
        policy["prices"] = {f"{name}/*": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}
                            for name in ("openai", "anthropic", "openai-stream",
                                         "anthropic-stream")}
    gateway = policy.setdefault("gateway", {})
    if not reply_cost:
        gateway["reply_cost"] = False
    if envoy_admission:
        gateway["admission"] = "envoy"
    policy["providers"]["openai-stream"] = {"kind": "openai",
                                            "base_url": base + fakes.STREAM_BASE}
    policy["providers"]["anthropic-stream"] = {"kind": "anthropic",
                                               "base_url": base + fakes.ANTHROPIC_STREAM_BASE}
    policy["models"] = {
        "bench-openai": {"targets": [{"provider": "openai", "model": "gpt-4o-mini"}]},
        "bench-passthrough": {"targets": [{"provider": "openai"}]},
        "bench-anthropic": {"targets": [{"provider": "anthropic",
                                         "model": "claude-sonnet-4-5"}]},
        "bench-stream": {"targets": [{"provider": "openai-stream"}]},
        "bench-openai-for-anthropic": {"targets": [{"provider": "openai",
                                                    "model": "gpt-4o-mini"}]},
        "bench-stream-for-anthropic": {"targets": [{"provider": "openai-stream",
                                                    "model": "gpt-4o-mini"}]},
        "bench-anthropic-stream": {"targets": [{"provider": "anthropic-stream",
                                                "model": "claude-sonnet-4-5"}]},
        **policy["models"],
    }
    assert model_name(0) in policy["models"] or filler == 0
    return yaml.safe_dump(policy, sort_keys=False, width=200)


def ensure_wrk() -> str:
    return ensure_command("wrk", "wrk")


def ensure_command(command: str, package: str) -> str:
    """The command's path, its Debian package installed first when it is missing."""
    found = shutil.which(command)
    if found:
        return found
    sudo = [] if os.getuid() == 0 else ["sudo"]
    print(f"{command} is missing: installing the Debian package {package}", file=sys.stderr)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", package], check=False,
                   timeout=300, stdout=subprocess.DEVNULL)
    found = shutil.which(command)
    if not found:
        raise SystemExit(f"{command} is not installed and could not be installed "
                         f"(apt-get install {package})")
    return found


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Target:
    name: str
    url: str
    pids: dict[str, int]  # role -> pid, every process on the request path
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request
    # The scenarios another gateway serves, each with the headers that route it there;
    # None: every scenario, with `headers` alone.
    scenarios: dict[str, dict[str, str]] | None = None

    def serves(self, scenario: Scenario) -> bool:
        return self.scenarios is None or scenario.name in self.scenarios

    def for_scenario(self, scenario: Scenario) -> Target:
        extra = (self.scenarios or {}).get(scenario.name, {})
        return dataclasses.replace(self, headers={**self.headers, **extra}) if extra else self


def http_request(url: str, body: bytes | None = None, timeout: float = 2.0,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET",
                                     headers={"content-type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except OSError:
        return 0, b""


def wait_until(check: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready in {timeout_s}s")
        time.sleep(0.1)


@contextlib.contextmanager
def envoy_process(config: dict[str, Any], work: Path,
                  name: str) -> Iterator[subprocess.Popen[bytes]]:
    # JSON: Envoy's YAML reader folds PyYAML's multi-line scalars, losing the fakes' last
    # newline (a stream's final blank line).
    path = work / f"{name}.json"
    path.write_text(json.dumps(config))
    log = (work / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [envoy_binary(), "-c", str(path), "--base-id", str(free_port()), "--log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop_process(process)
        log.close()


@contextlib.contextmanager
def running_switchboard(policy: str, work: Path, workers: int, log_level: str,
                        headers: dict[str, str], env: dict[str, str] | None = None,
                        start_timeout_s: float = 60.0) -> Iterator[Target]:
    policy_path = work / "policy.yaml"
    policy_path.write_text(policy)
    ports = [free_port() for _ in range(4)]
    log = (work / "switchboard.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "control_plane", "up", "--policy", str(policy_path),
         "--workers", str(workers), "--listener-port", str(ports[0]), "--xds-port",
         str(ports[1]), "--admin-port", str(ports[2]), "--envoy-admin-port", str(ports[3]),
         "--log-level", log_level],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        # A ledger of its own: the user's default one would grow with every run (and slow it).
        env={**os.environ, "PYTHONPATH": str(REPO), STATE_DIR_ENV: str(work / "state"),
             **(env or {})})
    try:
        url = f"http://127.0.0.1:{ports[0]}"

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"switchboard exited:\n{(work / 'switchboard.log').read_text()}")
            status, body = http_request(f"http://127.0.0.1:{ports[2]}/status")
            if status != 200 or http_request(url + "/v1/models", headers=headers)[0] != 200:
                return False
            clients = orjson.loads(body)["clients"]
            workers_acked = [c for c in clients if c["node"].startswith("ext-proc-")
                             and c["acked"]]
            return len(workers_acked) == workers
        wait_until(ready, "switchboard", start_timeout_s)
        pids = {"control_plane": process.pid}
        for pid in children(process.pid):
            argv = command_line(pid)
            if argv and argv[0].endswith("envoy"):
                pids["envoy"] = pid
            elif "ext_proc.worker" in argv:
                pids[f"worker-{argv[argv.index('--node-id') + 1].rsplit('-', 1)[-1]}"] = pid
        yield Target("switchboard", url, pids, headers)
    finally:
        stop_process(process)
        log.close()


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_LATENCY = re.compile(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(binary: str, target: Target, path: str, body: bytes, connections: int,
        duration: float, work: Path) -> dict[str, Any]:
    body_path = work / "body.json"
    body_path.write_bytes(body)
    script = work / "post.lua"
    extra = "".join(f'wrk.headers["{name}"] = "{value}"\n'
                    for name, value in target.headers.items())
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        + extra +
        f'local f = io.open("{body_path}", "rb")\n'
        'wrk.body = f:read("*a")\nf:close()\n')
    command = [binary, "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--latency",
               "-s", str(script), target.url + path]
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            timeout=duration + 30).stdout
    latency = {f"p{m.group(1)}_ms": float(m.group(2)) * _UNITS[m.group(3)]
               for m in _LATENCY.finditer(output)}
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
            "requests": requests, "non_2xx": int(errors.group(1)) if errors else 0, **latency}


def _probe(target: Target, path: str, body: bytes, stream: bool, whole: bytes) -> None:
    """One request before measuring: the right answer, or no numbers at all. A gateway
    answers in the client's schema, whole; plain Envoy hands on the fake's answer."""
    status, answer = http_request(target.url + path, body, timeout=10, headers=target.headers)
    expected = (b"data: " if stream else b"{") if target.name == "plain" else whole
    if status != 200 or expected not in answer:
        raise RuntimeError(f"{target.name} {path}: {status} {answer[:200]!r} ... "
                           f"{answer[-200:]!r}")


def measure(binary: str, target: Target, path: str, body: bytes, connections: int,
            duration: float, work: Path) -> dict[str, Any]:
    before = {role: sample(pid) for role, pid in target.pids.items()}
    result = wrk(binary, target, path, body, connections, duration, work)
    after = {role: sample(pid) for role, pid in target.pids.items()}
    requests = max(result["requests"], 1)
    cpu = {role: after[role].cpu_s - before[role].cpu_s for role in target.pids}
    return {**result,
            "cpu_s": cpu,
            "cpu_us_per_request": {role: 1e6 * c / requests for role, c in cpu.items()},
            "cpu_us_per_request_total": 1e6 * sum(cpu.values()) / requests,
            "rss_mb": {role: after[role].rss_bytes / 2**20 for role in target.pids}}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.others import litellm, litellm_binary, portkey

    binary = ensure_wrk()
    upstream_port, plain_port = free_port(), free_port()
    policy = datapath_policy(upstream_port, args.filler_models, args.full_path,
                             reply_cost=not args.no_reply_cost,
                             envoy_admission=args.envoy_admission)
    headers = {"authorization": f"Bearer {BENCH_KEY}"} if args.full_path else {}
    litellm_command = litellm_binary(args.litellm)
    print(f"LiteLLM: {litellm_command or 'skipped (not installed)'}; "
          f"Portkey: {args.portkey or 'skipped (no --portkey)'}", file=sys.stderr)
    scenarios = [SCENARIOS[name] for name in args.scenarios]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        upstream = fakes.upstream_config(upstream_port, free_port())
        plain_config = fakes.plain_proxy_config(plain_port, free_port(), upstream_port)
        up = stack.enter_context(envoy_process(upstream, work, "upstream"))
        plain_process = stack.enter_context(envoy_process(plain_config, work, "plain"))
        targets = [Target("plain", f"http://127.0.0.1:{plain_port}",
                          {"envoy": plain_process.pid}),
                   stack.enter_context(
                       running_switchboard(policy, work, args.workers, args.log_level, headers))]
        if litellm_command:
            targets.append(stack.enter_context(litellm(
                litellm_command, upstream_port, scenarios, work, args.litellm_workers)))
        if args.portkey:
            targets.append(stack.enter_context(portkey(args.portkey, upstream_port, work)))
        wait_until(lambda: http_request(targets[0].url + fakes.OPENAI_BASE + CHAT_PATH,
                                        b"{}")[0] == 200, "plain envoy")
        for scenario in scenarios:
            serving = [t.for_scenario(scenario) for t in targets if t.serves(scenario)]
            runs += _scenario(binary, scenario, serving, args, work)
        up_cpu = sample(up.pid).cpu_s
    return {"label": args.label, "settings": {k: v for k, v in vars(args).items()
                                              if k not in ("run",)},
            "upstream_cpu_s_total": up_cpu, "runs": runs, "summary": summarize(runs)}


def _scenario(binary: str, scenario: Scenario, targets: list[Target],
              args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Every target at every connection count, interleaved round by round."""
    body = scenario.request()

    def path(target: Target) -> str:
        return scenario.plain_path if target.name == "plain" else scenario.client_path

    for target in targets:
        _probe(target, path(target), body, scenario.stream, scenario.answer)
        wrk(binary, target, path(target), body, 16, 2, work)  # warm-up
    runs = []
    for connections in args.connections:
        for round_ in range(args.rounds):
            for target in targets:
                result = measure(binary, target, path(target), body, connections,
                                 args.duration, work)
                result.update(scenario=scenario.name, target=target.name,
                              connections=connections, round=round_, upstream_cpu_s=None)
                runs.append(result)
                print(f"{scenario.name:<10} {target.name:<11} c={connections:<3} "
                      f"{result['rps']:>8.0f} rps  p50 {result.get('p50_ms', 0):.3f} ms"
                      f"  {result['cpu_us_per_request_total']:.0f} us CPU/req",
                      file=sys.stderr)
    return runs


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per (scenario, connections, target) and Switchboard against plain Envoy."""
    rows = []
    keys = sorted({(r["scenario"], r["connections"]) for r in runs},
                  key=lambda k: (list(SCENARIOS).index(k[0]), k[1]))
    for scenario, connections in keys:
        by_target: dict[str, dict[str, float]] = {}
        names = sorted({r["target"] for r in runs if r["scenario"] == scenario
                        and r["connections"] == connections})
        for target in names:
            mine = [r for r in runs if r["scenario"] == scenario and
                    r["connections"] == connections and r["target"] == target]
            by_target[target] = {
                "rps": statistics.median(r["rps"] for r in mine),
                "p50_ms": statistics.median(r.get("p50_ms", 0.0) for r in mine),
                "p99_ms": statistics.median(r.get("p99_ms", 0.0) for r in mine),
                "cpu_us_per_request": statistics.median(
                    r["cpu_us_per_request_total"] for r in mine),
                "non_2xx": sum(r["non_2xx"] for r in mine),
            }
        plain, gateway = by_target["plain"], by_target["switchboard"]
        last = [r for r in runs if r["scenario"] == scenario and r["target"] == "switchboard"
                and r["connections"] == connections]
        rows.append({
            "scenario": scenario, "connections": connections,
            "plain": plain, "switchboard": gateway,
            "throughput_ratio": gateway["rps"] / plain["rps"] if plain["rps"] else 0.0,
            "added_p50_ms": gateway["p50_ms"] - plain["p50_ms"],
            "switchboard_rss_mb": last[-1]["rss_mb"],
            "switchboard_cpu_us_per_request": last[-1]["cpu_us_per_request"],
            # Other gateways in the same runs, against the same plain Envoy.
            "others": {name: {**numbers, "throughput_ratio":
                              numbers["rps"] / plain["rps"] if plain["rps"] else 0.0,
                              "added_p50_ms": numbers["p50_ms"] - plain["p50_ms"]}
                       for name, numbers in by_target.items()
                       if name not in ("plain", "switchboard")},
        })
    return rows

"""The `switchboard` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import yaml

from control_plane.compiler import GatewaySettings, compile_policy
from control_plane.defaults import default_policy_documents
from control_plane.logs import configure_logging
from control_plane.policy import PolicyError, load_documents, load_path
from control_plane.sources import read_documents
from control_plane.xds.resources import PUSH_ORDER, to_dict


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if getattr(args, "state_dir", None):
        # Read by the control plane and inherited by every worker process.
        os.environ["SWITCHBOARD_STATE_DIR"] = str(Path(args.state_dir).resolve())
    sys.exit(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=(
        "Self-hosted AI gateway: one endpoint for every LLM client."))
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run Envoy, the control plane and the workers")
    up.add_argument("--policy", help="policy file or directory (default: the built-in policy)")
    up.add_argument("--workers", type=int, default=2, help="ext_proc worker processes")
    _gateway_args(up, default_host="127.0.0.1")
    up.add_argument("--envoy-admin-port", type=int, default=9901)
    up.add_argument("--xds-port", type=int, default=18000)
    up.add_argument("--admin-port", type=int, default=8080)
    up.add_argument("--ext-proc-health-port", type=int, default=None, help=(
        "serve the workers' GET /healthz and GET /metrics on this loopback port "
        "(default: not served)"))
    up.add_argument("--log-level", default="info")
    up.set_defaults(run=_up)

    validate = commands.add_parser("validate", help="check a policy; errors name file:line")
    validate.add_argument("path")
    _state_redis_arg(validate, "check the policy as a control plane started with this flag "
                     "serves it (the Helm chart's, when it has Redis)")
    validate.set_defaults(run=_validate)

    render = commands.add_parser("render", help="print the Envoy resources a policy becomes")
    render.add_argument("path")
    _gateway_args(render, default_host="0.0.0.0")
    render.set_defaults(run=_render)

    control = _control_plane_command(commands)

    workers = commands.add_parser("ext-proc", help="run the ext_proc worker processes")
    workers.add_argument("--workers", type=int, default=2)
    workers.add_argument("--socket-dir", required=True)
    workers.add_argument("--xds-address", required=True, help="HOST:PORT of the control plane")
    workers.add_argument("--secrets-dir", default=None)
    workers.add_argument("--health-port", type=int, default=None,
                         help="serve GET /healthz (200 while every worker runs) and "
                              "GET /metrics (every worker's metrics, summed) on this port")
    workers.add_argument("--envoy-admin-port", type=int, default=None,
                         help="Envoy's admin port on this host (the gateway pod): its "
                              "statistics are appended to GET /metrics")
    workers.add_argument("--log-level", default="info")
    workers.set_defaults(run=_ext_proc)

    _envoy_command(commands)
    _accounting_commands(commands)
    for command in (up, control, workers):
        command.add_argument("--state-dir", default=None, help=(
            "where the SQLite ledger lives unless the policy names a file "
            "(default: $SWITCHBOARD_STATE_DIR or ~/.local/state/switchboard)"))
    return parser


def _control_plane_command(commands: argparse._SubParsersAction  # type: ignore[type-arg]
                           ) -> argparse.ArgumentParser:
    control: argparse.ArgumentParser = commands.add_parser(
        "control-plane", help="serve xDS and the admin API")
    control.add_argument("--policy", required=True, help="policy file or directory")
    control.add_argument("--policy-configmap", metavar="NAMESPACE/NAME", help=(
        "also follow this ConfigMap through the Kubernetes API (faster than a volume)"))
    control.add_argument("--leader-election-lease", metavar="NAMESPACE/NAME")
    control.add_argument("--leader-election-identity", default=os.environ.get("POD_NAME", ""))
    _state_redis_arg(control, "the Redis this deployment provides for budgets and usage: a "
                     "policy without state.backend uses it; one declaring SQLite is refused")
    control.add_argument("--no-local-ledger", action="store_true", help=(
        "the workers' SQLite ledger is not on this host (Kubernetes): with a SQLite policy, "
        "/usage and /budgets answer 409 and housekeeping leaves SQLite to the workers"))
    control.add_argument("--housekeeping-interval-s", type=_positive_float, default=30.0,
                         help="how often the leader expires abandoned reservations and "
                              "applies state.usage_retention")
    _gateway_args(control, default_host="0.0.0.0")
    control.add_argument("--listen-host", default="0.0.0.0")
    control.add_argument("--xds-port", type=int, default=18000)
    control.add_argument("--admin-port", type=int, default=8080)
    control.add_argument("--log-level", default="info")
    control.set_defaults(run=_control_plane)
    return control


def _envoy_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    envoy = commands.add_parser("envoy", help="write Envoy's bootstrap and run Envoy")
    envoy.add_argument("--xds-address", required=True, help="HOST:PORT of the control plane")
    envoy.add_argument("--ext-proc-socket-dir", required=True)
    envoy.add_argument("--workers", type=int, default=2)
    envoy.add_argument("--admin-host", default="127.0.0.1")
    envoy.add_argument("--admin-port", type=int, default=9901)
    envoy.add_argument("--log-level", default="warn")
    envoy.add_argument("--drain-time-s", type=_non_negative_int, default=5, help=(
        "after POST /drain_listeners?graceful, Envoy keeps accepting connections this long "
        "(answering each with Connection: close or GOAWAY) before it closes its listeners; "
        "also how long a listener removed by the control plane drains"))
    envoy.add_argument("--drain-strategy", choices=["immediate", "gradual"], default="immediate",
                       help="tell every client to go away at once, or more of them over time")
    envoy.set_defaults(run=_envoy)


def _state_redis_arg(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--state-redis-url", metavar="REF", type=_redis_url_ref, default=None,
                        help=f"{help_text} (a reference: env:NAME, file:PATH, secret:NAME/KEY)")


def _redis_url_ref(value: str) -> str:
    from pydantic import ValidationError

    from control_plane.shared_state import check_redis_url_ref

    try:
        return check_redis_url_ref(value)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.errors()[0]["msg"]) from None


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return number


def _accounting_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = commands.add_parser("keys", help="gateway keys")
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="print a new key once, and its hash")
    create.add_argument("--team", required=True)
    create.set_defaults(run=_keys_create)

    usage = commands.add_parser("usage", help="usage and cost, from the admin API")
    usage.add_argument("--by", choices=["team", "model", "provider", "provider_model", "key"],
                       default="team")
    usage.add_argument("--since", default="24h", help="a duration: 30m, 24h, 7d")
    usage.add_argument("--admin-url", default=os.environ.get("SWITCHBOARD_ADMIN_URL",
                                                             "http://127.0.0.1:8080"))
    usage.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    usage.set_defaults(run=_usage)


def _gateway_args(parser: argparse.ArgumentParser, default_host: str) -> None:
    parser.add_argument("--listener-host", default=default_host,
                        help="address Envoy's client listener binds")
    parser.add_argument("--listener-port", type=int, default=10000)
    parser.add_argument("--ca-bundle", default=GatewaySettings.ca_bundle,
                        help="CA certificates that verify providers' TLS")


def _gateway(args: argparse.Namespace) -> GatewaySettings:
    return GatewaySettings(listener_host=args.listener_host, listener_port=args.listener_port,
                           ca_bundle=args.ca_bundle)


def _keys_create(args: argparse.Namespace) -> int:
    from control_plane.keys import create_key

    key, digest = create_key(args.team)
    print(f"key:  {key}\n      (shown once: give it to team {args.team!r}; it is not stored)")
    print(f"hash: {digest}\n      (add it under teams.{args.team}.keys in the policy)")
    return 0


def _usage(args: argparse.Namespace) -> int:
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode({"by": args.by, "since": args.since})
    url = f"{args.admin_url.rstrip('/')}/usage?{query}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            report = json.load(response)
    except urllib.error.HTTPError as exc:
        print(f"{url}: {exc.code} {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"{url}: {exc.reason} (is the control plane running?)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(_usage_table(report))
    return 0


def _usage_table(report: dict[str, object]) -> str:
    columns = ("group", "attempts", "input_tokens", "output_tokens", "cached_read_tokens",
               "cost_usd", "unpriced_attempts", "failed_attempts")
    rows = report["rows"]
    assert isinstance(rows, list)
    cells = [[report["by"], *columns[1:]]] + [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(str(line[i])) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
             for line in cells]
    return "\n".join([f"usage since {report['since']}", *lines])


def _validate(args: argparse.Namespace) -> int:
    from control_plane.shared_state import with_shared_state

    try:
        policy = load_path(args.path)
        if args.state_redis_url is not None:
            policy = with_shared_state(policy, read_documents(Path(args.path)),
                                       args.state_redis_url)
        compile_policy(policy, GatewaySettings())
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.path}: valid ({len(policy.providers)} providers, {len(policy.models)} models)")
    return 0


def _render(args: argparse.Namespace) -> int:
    try:
        snapshot = compile_policy(load_path(args.path), _gateway(args))
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    rendered = {"version": snapshot.version, "resources": {
        type_url.rsplit("/", 1)[-1]: [to_dict(r) for _, r in sorted(
            snapshot.of_type(type_url).items())]
        for type_url in PUSH_ORDER}}
    print(yaml.safe_dump(rendered, sort_keys=False, width=100), end="")
    return 0


def _up(args: argparse.Namespace) -> int:
    from control_plane.up import UpSettings, run_up

    if args.policy is None:
        docs = default_policy_documents(os.environ)
    else:
        docs = read_documents(Path(args.policy))
    try:
        load_documents(docs)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    configure_logging(args.log_level)
    settings = UpSettings(
        gateway=_gateway(args), policy_path=args.policy, default_docs=docs,
        workers=args.workers, xds_port=args.xds_port, admin_port=args.admin_port,
        envoy_admin_port=args.envoy_admin_port,
        ext_proc_health_port=args.ext_proc_health_port, log_level=args.log_level)
    with tempfile.TemporaryDirectory(prefix="switchboard-") as work_dir:
        return asyncio.run(run_up(settings, Path(work_dir)))


def _control_plane(args: argparse.Namespace) -> int:
    from control_plane.up import run_control_plane

    configure_logging(args.log_level)
    return asyncio.run(run_control_plane(_gateway(args), args))


def _ext_proc(args: argparse.Namespace) -> int:
    from control_plane.up import run_ext_proc
    from ext_proc.envoy_stats import admin_stats_url
    from ext_proc.pool import PoolSettings
    from ext_proc.secrets import DEFAULT_SECRETS_DIR

    configure_logging(args.log_level)
    secrets_dir = args.secrets_dir or os.environ.get("SWITCHBOARD_SECRETS_DIR",
                                                     DEFAULT_SECRETS_DIR)
    return asyncio.run(run_ext_proc(PoolSettings(
        workers=args.workers, socket_dir=args.socket_dir, xds_address=args.xds_address,
        secrets_dir=secrets_dir, log_level=args.log_level), args.health_port,
        admin_stats_url(args.envoy_admin_port) if args.envoy_admin_port else None))


def _envoy(args: argparse.Namespace) -> int:
    from control_plane.up import run_envoy

    configure_logging()
    return asyncio.run(run_envoy(args))

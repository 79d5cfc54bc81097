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
    up.add_argument("--log-level", default="info")
    up.set_defaults(run=_up)

    validate = commands.add_parser("validate", help="check a policy; errors name file:line")
    validate.add_argument("path")
    validate.set_defaults(run=_validate)

    render = commands.add_parser("render", help="print the Envoy resources a policy becomes")
    render.add_argument("path")
    _gateway_args(render, default_host="0.0.0.0")
    render.set_defaults(run=_render)

    control = commands.add_parser("control-plane", help="serve xDS and the admin API")
    control.add_argument("--policy", required=True, help="policy file or directory")
    control.add_argument("--policy-configmap", metavar="NAMESPACE/NAME", help=(
        "also follow this ConfigMap through the Kubernetes API (faster than a volume)"))
    control.add_argument("--leader-election-lease", metavar="NAMESPACE/NAME")
    control.add_argument("--leader-election-identity", default=os.environ.get("POD_NAME", ""))
    _gateway_args(control, default_host="0.0.0.0")
    control.add_argument("--listen-host", default="0.0.0.0")
    control.add_argument("--xds-port", type=int, default=18000)
    control.add_argument("--admin-port", type=int, default=8080)
    control.add_argument("--log-level", default="info")
    control.set_defaults(run=_control_plane)

    workers = commands.add_parser("ext-proc", help="run the ext_proc worker processes")
    workers.add_argument("--workers", type=int, default=2)
    workers.add_argument("--socket-dir", required=True)
    workers.add_argument("--xds-address", required=True, help="HOST:PORT of the control plane")
    workers.add_argument("--secrets-dir", default=None)
    workers.add_argument("--health-port", type=int, default=None,
                         help="serve GET /healthz (200 while every worker runs) on this port")
    workers.add_argument("--log-level", default="info")
    workers.set_defaults(run=_ext_proc)

    envoy = commands.add_parser("envoy", help="write Envoy's bootstrap and run Envoy")
    envoy.add_argument("--xds-address", required=True, help="HOST:PORT of the control plane")
    envoy.add_argument("--ext-proc-socket-dir", required=True)
    envoy.add_argument("--workers", type=int, default=2)
    envoy.add_argument("--admin-host", default="127.0.0.1")
    envoy.add_argument("--admin-port", type=int, default=9901)
    envoy.add_argument("--log-level", default="warn")
    envoy.set_defaults(run=_envoy)
    return parser


def _gateway_args(parser: argparse.ArgumentParser, default_host: str) -> None:
    parser.add_argument("--listener-host", default=default_host,
                        help="address Envoy's client listener binds")
    parser.add_argument("--listener-port", type=int, default=10000)
    parser.add_argument("--ca-bundle", default=GatewaySettings.ca_bundle,
                        help="CA certificates that verify providers' TLS")


def _gateway(args: argparse.Namespace) -> GatewaySettings:
    return GatewaySettings(listener_host=args.listener_host, listener_port=args.listener_port,
                           ca_bundle=args.ca_bundle)


def _validate(args: argparse.Namespace) -> int:
    try:
        policy = load_path(args.path)
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
        envoy_admin_port=args.envoy_admin_port, log_level=args.log_level)
    with tempfile.TemporaryDirectory(prefix="switchboard-") as work_dir:
        return asyncio.run(run_up(settings, Path(work_dir)))


def _control_plane(args: argparse.Namespace) -> int:
    from control_plane.up import run_control_plane

    configure_logging(args.log_level)
    return asyncio.run(run_control_plane(_gateway(args), args))


def _ext_proc(args: argparse.Namespace) -> int:
    from control_plane.up import run_ext_proc
    from ext_proc.pool import PoolSettings
    from ext_proc.secrets import DEFAULT_SECRETS_DIR

    configure_logging(args.log_level)
    secrets_dir = args.secrets_dir or os.environ.get("SWITCHBOARD_SECRETS_DIR",
                                                     DEFAULT_SECRETS_DIR)
    return asyncio.run(run_ext_proc(PoolSettings(
        workers=args.workers, socket_dir=args.socket_dir, xds_address=args.xds_address,
        secrets_dir=secrets_dir, log_level=args.log_level), args.health_port))


def _envoy(args: argparse.Namespace) -> int:
    from control_plane.up import run_envoy

    configure_logging()
    return asyncio.run(run_envoy(args))

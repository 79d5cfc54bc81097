"""The store a deployment provides (the Helm chart's Redis): used by a policy that names none,
refused to a policy that insists on SQLite, with the same answer from `switchboard validate`."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.cli import _parser, main
from control_plane.compiler import GatewaySettings
from control_plane.policy import PolicyError
from control_plane.service import ControlPlane, load_for_deployment

REDIS = "env:SWITCHBOARD_REDIS_URL"
BASE = """providers: {demo: {kind: mock}}
models: {demo: {targets: [{provider: demo}]}}
"""


def test_a_policy_without_state_uses_the_deployments_redis() -> None:
    policy = load_for_deployment({"p.yaml": BASE}, REDIS)
    assert (policy.state.backend, policy.state.url) == ("redis", REDIS)


def test_without_a_deployment_store_the_policy_is_served_as_written() -> None:
    assert load_for_deployment({"p.yaml": BASE}).state.backend == "sqlite"


def test_retention_alone_keeps_the_deployments_redis() -> None:
    docs = {"p.yaml": BASE, "state.yaml": "state: {usage_retention: 90d}\n"}
    state = load_for_deployment(docs, REDIS).state
    assert (state.backend, state.url, state.usage_retention) == ("redis", REDIS, 90 * 86400)


@pytest.mark.parametrize("state", ["state: {backend: redis, url: secret:team-redis/url}",
                                   "state: {url: secret:team-redis/url}"])
def test_a_policy_naming_its_own_redis_keeps_it(state: str) -> None:
    policy = load_for_deployment({"p.yaml": BASE + state + "\n"}, REDIS)
    assert (policy.state.backend, policy.state.url) == ("redis", "secret:team-redis/url")


@pytest.mark.parametrize("state", ["state: {backend: sqlite}", "state:\n  path: /data/l.db"])
def test_a_policy_insisting_on_sqlite_is_refused_where_it_says_so(state: str) -> None:
    docs = {"a.yaml": BASE, "z-org.yaml": "# org settings\n\n" + state + "\n"}
    with pytest.raises(PolicyError) as caught:
        load_for_deployment(docs, REDIS)
    (issue,) = caught.value.issues
    assert (issue.file, issue.line, issue.field) == ("z-org.yaml", 3, "state.backend")
    assert "per gateway pod" in issue.message


def test_the_control_plane_keeps_its_last_policy_when_sqlite_is_declared() -> None:
    control_plane = ControlPlane(GatewaySettings(), state_redis_url=REDIS)
    assert control_plane.apply({"p.yaml": BASE})
    version = control_plane.status.version
    assert not control_plane.apply({"p.yaml": BASE + "state: {backend: sqlite}\n"})
    assert control_plane.status.version == version
    assert control_plane.policy is not None and control_plane.policy.state.backend == "redis"
    assert "state.backend" in control_plane.status.last_error[0]


def test_a_malformed_reference_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="must be a reference"):
        ControlPlane(GatewaySettings(), state_redis_url="redis://plain-text-url")
    with pytest.raises(SystemExit):
        _parser().parse_args(["control-plane", "--policy", "p", "--state-redis-url", "nope"])


def test_validate_checks_a_policy_as_the_chart_serves_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.yaml").write_text(BASE + "state: {backend: sqlite}\n")
    with pytest.raises(SystemExit) as plain:
        main(["validate", str(tmp_path)])
    assert plain.value.code == 0
    with pytest.raises(SystemExit) as charted:
        main(["validate", "--state-redis-url", REDIS, str(tmp_path)])
    assert charted.value.code == 1
    assert f"{tmp_path / 'p.yaml'}:3: state.backend:" in capsys.readouterr().err

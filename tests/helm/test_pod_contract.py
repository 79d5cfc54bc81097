"""What every scenario must hold: probes, security, least privilege, drain, the CLI contract."""

from __future__ import annotations

import re
from typing import Any

from chart_render import (
    NAMESPACE,
    find,
    manifests,
    pod_containers,
    render,
    scenario_manifests,
    scenario_values,
)


def _workloads(scenario: str) -> list[dict[str, Any]]:
    return find(scenario_manifests(scenario), "Deployment")


def test_every_container_has_probes_resources_and_a_locked_down_context(scenario: str) -> None:
    for deployment in _workloads(scenario):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod_containers(deployment):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            assert "readinessProbe" in container, where
            assert "livenessProbe" in container, where
            assert container["resources"]["requests"], where
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where


def test_gateway_pod_shares_sockets_and_has_no_api_token(scenario: str) -> None:
    (gateway,) = find(scenario_manifests(scenario), "Deployment", "switchboard-gateway")
    pod = gateway["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    containers = {c["name"]: c for c in pod_containers(gateway)}
    assert set(containers) == {"envoy", "ext-proc"}
    socket_dir = (
        scenario_values(scenario)
        .get("gateway", {})
        .get("extProc", {})
        .get("socketDir", "/var/run/switchboard/sockets")
    )
    for container in containers.values():
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["sockets"] == socket_dir
    envoy, ext_proc = containers["envoy"], containers["ext-proc"]
    assert envoy["args"][0] == "envoy"
    assert ext_proc["args"][0] == "ext-proc"
    workers = {a for a in envoy["args"] + ext_proc["args"] if a.startswith("--workers=")}
    assert len(workers) == 1, "Envoy and ext_proc must agree on the worker count"
    assert f"--ext-proc-socket-dir={socket_dir}" in envoy["args"]
    assert f"--socket-dir={socket_dir}" in ext_proc["args"]
    # Only Envoy's listener is exposed from the pod; its admin stays on loopback.
    assert [p["name"] for p in envoy["ports"]] == ["http"]


def _deadline(script: str) -> int:
    match = re.search(r"end=\$\(\(SECONDS \+ (\d+)\)\)", script)
    assert match is not None, script
    return int(match[1])


def test_graceful_drain_outlasts_nothing_it_should_not(scenario: str) -> None:
    (gateway,) = find(scenario_manifests(scenario), "Deployment", "switchboard-gateway")
    pod = gateway["spec"]["template"]["spec"]
    envoy = next(c for c in pod["containers"] if c["name"] == "envoy")
    hook = envoy["lifecycle"]["preStop"]["exec"]["command"][-1]
    assert "admin POST '/drain_listeners?graceful'" in hook
    drain = _deadline(hook)
    # Envoy keeps its listeners open (telling clients to go) for as long as the hook may wait.
    assert f"--drain-time-s={drain}" in envoy["args"]
    assert pod["terminationGracePeriodSeconds"] > drain + 5
    ext_proc = next(c for c in pod_containers(gateway) if c["name"] == "ext-proc")
    if ext_proc.get("restartPolicy") == "Always":
        assert ext_proc in pod["initContainers"]  # a native sidecar stops after Envoy
    else:
        # A regular sidecar keeps serving until Envoy is gone, at most a little past the drain.
        assert _deadline(ext_proc["lifecycle"]["preStop"]["exec"]["command"][-1]) > drain


def test_provider_secrets_are_mounted_only_into_ext_proc() -> None:
    docs = scenario_manifests("replicated")
    (gateway,) = find(docs, "Deployment", "switchboard-gateway")
    containers = {c["name"]: c for c in pod_containers(gateway)}
    secret_mounts = [
        m for m in containers["ext-proc"]["volumeMounts"] if m["name"].startswith("provider-")
    ]
    assert [(m["mountPath"], m["readOnly"]) for m in secret_mounts] == [
        ("/var/run/switchboard/secrets/openai-credentials", True),
        ("/var/run/switchboard/secrets/vllm-credentials", True),
    ]
    assert not any(m["name"].startswith("provider-") for m in containers["envoy"]["volumeMounts"])
    (cp,) = find(docs, "Deployment", "switchboard-control-plane")
    assert all("secret" not in v for v in cp["spec"]["template"]["spec"]["volumes"])


def test_envoy_mounts_provider_secrets_only_when_told_to() -> None:
    """For gateway.admission: envoy, Envoy reads provider keys itself, at the same paths."""
    values = {**scenario_values("replicated"),
              "providerSecrets": {**scenario_values("replicated")["providerSecrets"],
                                  "mountInEnvoy": True}}
    (gateway,) = find(manifests(render(values)), "Deployment", "switchboard-gateway")
    containers = {c["name"]: c for c in pod_containers(gateway)}
    mounts = {name: [(m["mountPath"], m.get("readOnly")) for m in c["volumeMounts"]
                     if m["name"].startswith("provider-")]
              for name, c in containers.items()}
    assert mounts["envoy"] == mounts["ext-proc"] and len(mounts["envoy"]) == 2
    assert all(read_only for _, read_only in mounts["envoy"])
    (cp,) = find(manifests(render(values)), "Deployment", "switchboard-control-plane")
    [control_plane] = pod_containers(cp)
    assert {"name": "SWITCHBOARD_SECRETS_DIR", "value": "/var/run/switchboard/secrets"} \
        in control_plane["env"]  # the lane is compiled with these paths


def _role_rules(scenario: str) -> list[dict[str, Any]]:
    roles = find(scenario_manifests(scenario), "Role")
    return roles[0]["rules"] if roles else []


def test_control_plane_rbac_is_least_privilege() -> None:
    assert _role_rules("default") == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["switchboard-policy"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    assert _role_rules("replicated")[1:] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["switchboard-control-plane"],
            "verbs": ["get", "update"],
        },
    ]
    assert _role_rules("gitops")[0]["resourceNames"] == ["switchboard-routing-policy"]
    # No API access needed at all: no Role, and no token in the pod.
    assert _role_rules("httproute") == []
    (cp,) = find(scenario_manifests("httproute"), "Deployment", "switchboard-control-plane")
    assert cp["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert not find(scenario_manifests("default"), "ClusterRole")


def test_control_plane_flags_follow_the_values() -> None:
    def args(scenario: str) -> list[str]:
        (cp,) = find(scenario_manifests(scenario), "Deployment", "switchboard-control-plane")
        return list(cp["spec"]["template"]["spec"]["containers"][0]["args"])

    assert f"--policy-configmap={NAMESPACE}/switchboard-policy" in args("default")
    assert not any(a.startswith("--leader-election") for a in args("default"))
    assert f"--leader-election-lease={NAMESPACE}/switchboard-control-plane" in args("replicated")
    assert "--leader-election-identity=$(POD_NAME)" in args("replicated")
    assert not any(a.startswith("--policy-configmap") for a in args("httproute"))


def test_control_plane_keeps_budgets_where_the_gateway_pods_do(scenario: str) -> None:
    (cp,) = find(scenario_manifests(scenario), "Deployment", "switchboard-control-plane")
    pod = cp["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    # It never shares a file system with the gateway pods: no SQLite of its own either.
    assert "--no-local-ledger" in args
    assert [v["name"] for v in pod["volumes"]] == ["policy", "tmp"]
    redis = "--state-redis-url=env:SWITCHBOARD_REDIS_URL"
    assert (redis in args) == (scenario != "default")


def test_redis_url_reaches_both_components(scenario: str) -> None:
    expected = {
        "default": None,
        "replicated": {"value": "redis://switchboard-redis.gateway.svc.cluster.local:6379/0"},
        "gitops": {"valueFrom": {"secretKeyRef": {"name": "switchboard-redis", "key": "url"}}},
        "httproute": {"value": "redis://redis.shared-services.svc.cluster.local:6379/3"},
    }[scenario]
    for deployment in find(scenario_manifests(scenario), "Deployment"):
        for container in pod_containers(deployment):
            if container["name"] not in ("ext-proc", "control-plane"):
                continue
            env = {e["name"]: e for e in container.get("env", [])}
            found = env.get("SWITCHBOARD_REDIS_URL")
            if expected is None:
                assert found is None
            else:
                assert found == {"name": "SWITCHBOARD_REDIS_URL", **expected}


def test_autoscaled_gateway_leaves_replicas_to_the_hpa() -> None:
    docs = scenario_manifests("replicated")
    (gateway,) = find(docs, "Deployment", "switchboard-gateway")
    assert "replicas" not in gateway["spec"]
    (hpa,) = find(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "switchboard-gateway"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)

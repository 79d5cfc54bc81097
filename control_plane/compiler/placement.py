"""Which cluster serves each model.

Envoy spends about a millisecond per cluster, so clusters are shared where sharing changes
nothing a model asked for:

- A model with one target shares its provider's cluster with every other such model whose
  cluster settings (outlier detection, circuit breakers) resolve the same; its route names the
  provider's model. 10,000 single-target models cost one cluster per provider and setting.
- A model that sets `circuit_breakers` itself has a cluster of its own: its limits bound its
  own traffic, not that of every model it could share with.
- A model with fallback targets or a weighted split has a cluster of its own, one priority per
  target, whose endpoints name each target's model: the attempt decides which.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from control_plane.compiler.failover import Failover, inputs, resolve
from control_plane.policy import Policy
from control_plane.policy.models import CircuitBreakers, ModelRoute, OutlierDetection, Target


@dataclass(frozen=True)
class PlacedTarget:
    provider: str
    model: str | None  # None in a shared cluster: the route names the model
    weight: int
    priority: int


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    stat_name: str
    targets: tuple[PlacedTarget, ...]
    outlier_detection: OutlierDetection
    circuit_breakers: CircuitBreakers

    @property
    def shared(self) -> bool:
        return self.targets[0].model is None


@dataclass(frozen=True)
class Placement:
    """Where one model's requests go, and what its route must say."""

    cluster: str
    target_model: str | None  # named by the route when the cluster is shared
    failover: Failover


@dataclass(frozen=True)
class ClusterPlan:
    models: Mapping[str, Placement]
    clusters: Mapping[str, ClusterSpec]


def cluster_name(model: str) -> str:
    """The cluster of a model that has one of its own."""
    return f"model:{model}"


def plan_clusters(policy: Policy) -> ClusterPlan:
    models: dict[str, Placement] = {}
    clusters: dict[str, ClusterSpec] = {}
    shared: dict[tuple[str, OutlierDetection, CircuitBreakers], ClusterSpec] = {}
    failovers: dict[tuple[object, ...], Failover] = {}
    for name in sorted(policy.models):
        route = policy.models[name]
        key = inputs(route)
        failover = failovers.get(key)
        if failover is None:
            failover = failovers[key] = resolve(route, policy.defaults)
        placed = placed_targets(route)
        if len(placed) == 1 and route.circuit_breakers is None:
            target = placed[0][0]
            cluster = (target.provider, failover.outlier_detection, failover.circuit_breakers)
            spec = shared.get(cluster)
            if spec is None:
                spec = shared[cluster] = _shared_cluster(policy, *cluster)
                clusters[spec.name] = spec
            models[name] = Placement(spec.name, target.model or name, failover)
            continue
        spec = ClusterSpec(
            name=cluster_name(name), stat_name=_stat_name("model_" + name),
            targets=tuple(PlacedTarget(t.provider, t.model or name, t.weight, priority)
                          for t, priority in placed),
            outlier_detection=failover.outlier_detection,
            circuit_breakers=failover.circuit_breakers)
        clusters[spec.name] = spec
        models[name] = Placement(spec.name, None, failover)
    return ClusterPlan(models, clusters)


def placed_targets(route: ModelRoute) -> list[tuple[Target, int]]:
    """Each target with its Envoy priority: fallback targets one after another; a weighted
    split shares priority 0 and its fallbacks follow."""
    if route.strategy == "weighted":
        return ([(t, 0) for t in route.targets]
                + [(t, i + 1) for i, t in enumerate(route.fallbacks)])
    return [(t, i) for i, t in enumerate(route.targets)]


def _shared_cluster(policy: Policy, provider: str, outlier_detection: OutlierDetection,
                    circuit_breakers: CircuitBreakers) -> ClusterSpec:
    """`provider:NAME` with the policy's defaults; other settings add a digest of themselves,
    so a name changes only when its settings do (provider names never contain `~`)."""
    name = f"provider:{provider}"
    defaults = policy.defaults
    if (outlier_detection, circuit_breakers) != (defaults.outlier_detection,
                                                 defaults.circuit_breakers):
        settings = orjson.dumps([outlier_detection.model_dump(), circuit_breakers.model_dump()],
                                option=orjson.OPT_SORT_KEYS)
        name += "~" + hashlib.sha256(settings).hexdigest()[:8]
    return ClusterSpec(
        name=name, stat_name=_stat_name(name.replace(":", "_", 1)),
        targets=(PlacedTarget(provider, None, 1, 0),),
        outlier_detection=outlier_detection, circuit_breakers=circuit_breakers)


def _stat_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)

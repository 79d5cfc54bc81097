"""Kubernetes integrations of the control plane.

- :mod:`control_plane.kube.configmap_source` watches the policy ConfigMap through the API
  server, so a change applies in seconds instead of after the kubelet refreshes a mounted volume.
- :mod:`control_plane.kube.leader` elects one leader among control-plane replicas through a
  ``coordination.k8s.io/v1`` Lease; only the leader runs budget and usage housekeeping.

Both talk to the API server with the blocking ``kubernetes`` client, off the event loop.
"""

from control_plane.kube.configmap_source import Backoff, ConfigMapSource, policy_documents
from control_plane.kube.leader import Clock, LeaderElectionConfig, LeaderElector, SystemClock

__all__ = [
    "Backoff",
    "Clock",
    "ConfigMapSource",
    "LeaderElectionConfig",
    "LeaderElector",
    "SystemClock",
    "policy_documents",
]

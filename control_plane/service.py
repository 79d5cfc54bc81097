"""The control plane: policy in, snapshots out, served over ADS to Envoy and the workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import grpc
import structlog

from control_plane.compiler import GatewaySettings, compile_policy
from control_plane.compiler.compile import with_budget_headroom
from control_plane.policy import Policy, PolicyError, load_documents
from control_plane.shared_state import check_redis_url_ref, with_shared_state
from control_plane.xds.cache import SnapshotCache
from control_plane.xds.resources import PROCESSOR
from control_plane.xds.server import AggregatedDiscoveryService, add_to_server
from ext_proc.contract import PROCESSOR_RESOURCE_NAME
from protos.switchboard.v1 import processor_pb2

log = structlog.get_logger("control_plane")


class PolicySource(Protocol):
    def changes(self) -> AsyncIterator[Mapping[str, str]]: ...


@dataclass
class PolicyStatus:
    """What the admin API reports about the policy."""

    version: str = ""
    applied_at: float = 0.0
    last_error: list[str] = field(default_factory=list)
    last_error_at: float = 0.0


def load_for_deployment(docs: Mapping[str, str], state_redis_url: str | None = None) -> Policy:
    """Load `docs` as this deployment serves them: with its shared Redis, when it has one."""
    return with_shared_state(load_documents(docs), docs, state_redis_url)


class ControlPlane:
    def __init__(self, gateway: GatewaySettings, *, state_redis_url: str | None = None,
                 local_sqlite: bool = True) -> None:
        """`state_redis_url`: a reference to the Redis the deployment provides for budgets
        (see shared_state). `local_sqlite`: whether the workers' SQLite ledger is on this host,
        so the admin API and housekeeping can read it (False in Kubernetes)."""
        self.gateway = gateway
        self.state_redis_url = (None if state_redis_url is None
                                else check_redis_url_ref(state_redis_url))
        self.local_sqlite = local_sqlite
        self.cache = SnapshotCache()
        self.status = PolicyStatus()
        self.ready = asyncio.Event()
        self.policy: Policy | None = None
        self.budget_headroom: frozenset[str] = frozenset()

    def apply(self, docs: Mapping[str, str]) -> bool:
        """Validate and serve `docs`; on any error keep serving the previous policy."""
        try:
            policy = load_for_deployment(docs, self.state_redis_url)
            snapshot = compile_policy(policy, self.gateway)
        except PolicyError as exc:
            self.status.last_error = [str(issue) for issue in exc.issues]
            self.status.last_error_at = time.time()
            for issue in exc.issues:
                log.error("policy rejected; the previous policy stays live", issue=str(issue),
                          live_version=self.status.version or None)
            return False
        self.policy = policy
        self.budget_headroom = frozenset()  # until read again for this policy
        if self.cache.set(snapshot):
            self.status.version = snapshot.version
            self.status.applied_at = time.time()
            self.status.last_error = []
            log.info("policy applied", version=snapshot.version, files=sorted(docs))
        self.ready.set()
        return True

    @property
    def budgets(self) -> Mapping[str, processor_pb2.Budget]:
        """The budgets of the snapshot served, as the workers see them."""
        snapshot = self.cache.snapshot
        processor = snapshot.of_type(PROCESSOR).get(PROCESSOR_RESOURCE_NAME) if snapshot else None
        return processor.budgets if isinstance(processor, processor_pb2.ProcessorConfig) else {}

    def set_budget_headroom(self, policy: Policy, names: frozenset[str]) -> None:
        """The budgets read with headroom (budget_watch.py), whose requests Envoy's own
        admission may take; ignored when read under an older policy."""
        snapshot = self.cache.snapshot
        if policy is not self.policy or names == self.budget_headroom or snapshot is None:
            return
        self.budget_headroom = names
        snapshot = with_budget_headroom(snapshot, self.gateway, names)
        if self.cache.set(snapshot):
            self.status.version = snapshot.version
            log.info("budget headroom changed", version=snapshot.version,
                     with_headroom=sorted(names))

    async def follow(self, source: PolicySource) -> None:
        async for docs in source.changes():
            self.apply(docs)

    async def serve_xds(self, host: str, port: int) -> grpc.aio.Server:
        server = grpc.aio.server(options=[("grpc.max_send_message_length", 256 * 1024 * 1024)])
        add_to_server(AggregatedDiscoveryService(self.cache), server)
        server.add_insecure_port(f"{host}:{port}")
        await server.start()
        log.info("xds serving", address=f"{host}:{port}")
        return server

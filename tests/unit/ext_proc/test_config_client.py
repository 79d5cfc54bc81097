"""The workers' view of the policy is built once per policy: a push that changes only Envoy's
part of the snapshot (the lane's budgets) keeps it, under the new version."""

from __future__ import annotations

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from ext_proc import config_client
from ext_proc.config_client import ConfigClient
from ext_proc.contract import PROCESSOR_TYPE_URL
from ext_proc.view import ProcessorView
from protos.switchboard.v1 import processor_pb2


def response(version: str, config: processor_pb2.ProcessorConfig
             ) -> discovery_pb2.DiscoveryResponse:
    packed = any_pb2.Any()
    packed.Pack(config)
    return discovery_pb2.DiscoveryResponse(version_info=version, type_url=PROCESSOR_TYPE_URL,
                                           nonce=version, resources=[packed])


async def test_the_view_is_built_again_only_when_the_config_changes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real_build = config_client.build_view

    async def counting(version: str, config: processor_pb2.ProcessorConfig,
                       secrets_dir: str) -> ProcessorView:
        built.append(version)
        return await real_build(version, config, secrets_dir)

    monkeypatch.setattr(config_client, "build_view", counting)
    client = ConfigClient("127.0.0.1:1", "node", "/nonexistent")
    config = processor_pb2.ProcessorConfig(direct_forwarding=True)
    await client._apply(response("v1", config))
    ack = await client._apply(response("v2", config))  # the lane changed, not this
    assert built == ["v1"]
    assert client.view.version == "v2" and client.view.direct_forwarding
    assert (ack.version_info, ack.response_nonce) == ("v2", "v2")
    config.direct_forwarding = False
    await client._apply(response("v3", config))
    assert built == ["v1", "v3"] and not client.view.direct_forwarding

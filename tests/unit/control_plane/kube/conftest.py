from __future__ import annotations

from collections.abc import Iterator

import pytest
from kube_fake_apiserver import FakeApiServer
from kubernetes import client


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api_client(apiserver: FakeApiServer) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    configuration.host = apiserver.url
    configuration.retries = False  # every request the test sees is one the code made
    with client.ApiClient(configuration) as api_client:
        yield api_client

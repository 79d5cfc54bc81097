"""HTTPS providers: Envoy verifies the certificate against the CA bundle and the host name."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.support.gateway import start_gateway
from tests.support.tls import make_certificates

pytestmark = pytest.mark.integration

POLICY = """
providers:
  secure: {{kind: openai, base_url: "{url}", api_key: env:SECURE_KEY}}
models:
  safe: {{targets: [{{provider: secure}}]}}
"""


@pytest.mark.parametrize(("trusted", "status"), [(True, 200), (False, 503)])
def test_tls_to_the_provider_is_verified(tmp_path: Path, trusted: bool, status: int) -> None:
    certs = make_certificates(tmp_path)
    fake = FakeOpenAI("fake-tls", tls=(str(certs.cert), str(certs.key))).start()
    bundle = certs.ca if trusted else Path("/etc/ssl/certs/ca-certificates.crt")
    gateway = start_gateway(POLICY.format(url=fake.base_url), tmp_path,
                            env={"SECURE_KEY": "tls-secret"},
                            extra_args=("--ca-bundle", str(bundle)))
    try:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
        if trusted:
            reply = client.chat.completions.create(
                model="safe", messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content == "fake-tls answers safe"
            assert fake.received[0].headers["authorization"] == "Bearer tls-secret"
        else:
            with pytest.raises(openai.APIStatusError) as raised:
                client.chat.completions.create(
                    model="safe", messages=[{"role": "user", "content": "hi"}])
            assert raised.value.status_code == status
            assert not fake.received
    finally:
        gateway.stop()
        fake.stop()

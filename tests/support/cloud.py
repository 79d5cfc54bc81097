"""A gateway in front of the cloud fake (tests/fakes/cloud_server.py): the four cloud providers
of a policy, and the credentials they reference, written where the policy says."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.cloud_server import CloudFake
from tests.support.gateway import Gateway, start_gateway

BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def providers_yaml(url: str, work: Path) -> str:
    """The `providers:` section: azure, bedrock, gemini and vertex, all served by the fake."""
    return f"""
providers:
  azure: {{kind: azure-openai, base_url: "{url}", api_key: "env:TEST_AZURE_KEY"}}
  bedrock: {{kind: bedrock, region: us-east-1, base_url: "{url}",
            aws_access_key_id: "env:TEST_AWS_ACCESS_KEY_ID",
            aws_secret_access_key: "file:{work}/aws-secret",
            aws_session_token: "env:TEST_AWS_SESSION_TOKEN"}}
  gemini: {{kind: gemini, base_url: "{url}", api_key: "env:TEST_GEMINI_KEY"}}
  vertex: {{kind: vertex, project: demo-project, location: europe-west4, base_url: "{url}",
           service_account: "file:{work}/service-account.json"}}
"""


def service_account(token_uri: str) -> dict[str, str]:
    """A service account's JSON key with a fresh RSA key, minting tokens at `token_uri`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "demo-project", "private_key_id": "k1",
            "private_key": pem, "client_email": "gateway@demo-project.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": token_uri}


def start_cloud_gateway(policy_rest: str, fake: CloudFake, work: Path) -> Gateway:
    """The gateway serving `providers_yaml` plus `policy_rest` (models, prices, teams...),
    with the credentials each provider references."""
    keys = fake.keys
    (work / "aws-secret").write_text(keys.aws_secret_access_key + "\n")
    (work / "service-account.json").write_text(json.dumps(service_account(f"{fake.url}/token")))
    return start_gateway(providers_yaml(fake.url, work) + policy_rest, work, env={
        "TEST_AZURE_KEY": keys.azure, "TEST_GEMINI_KEY": keys.gemini,
        "TEST_AWS_ACCESS_KEY_ID": keys.aws_access_key_id,
        "TEST_AWS_SESSION_TOKEN": keys.aws_session_token})

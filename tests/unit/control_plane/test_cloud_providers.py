"""The azure-openai, bedrock, gemini and vertex provider kinds: validation and compilation."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from control_plane.compiler.processor import processor_config
from control_plane.defaults import default_policy_documents
from control_plane.policy import PolicyError, load_documents
from control_plane.policy.models import Policy
from tests.unit.control_plane.compiled import compiled, model_cluster

PROVIDERS: dict[str, Any] = {
    "azure": {"kind": "azure-openai", "base_url": "https://acme.openai.azure.com",
              "api_key": "env:AZURE_KEY"},
    "aws": {"kind": "bedrock", "region": "eu-west-1", "aws_access_key_id": "env:AK",
            "aws_secret_access_key": "secret:aws/secret"},
    "gem": {"kind": "gemini", "api_key": "env:GEMINI_KEY"},
    "vtx": {"kind": "vertex", "project": "demo-project", "location": "us-central1",
            "service_account": "file:/secrets/sa.json"},
}


def test_defaults_and_what_the_workers_receive() -> None:
    config = processor_config(Policy.model_validate({"providers": PROVIDERS}))["providers"]
    assert config["azure"] == {"kind": "azure-openai", "base_url": "https://acme.openai.azure.com",
                               "api_key_ref": "env:AZURE_KEY",
                               "options": {"api_version": "2024-10-21"}, "list_prices": True}
    assert config["aws"] == {"kind": "bedrock",
                             "base_url": "https://bedrock-runtime.eu-west-1.amazonaws.com",
                             "credential_refs": {"aws_access_key_id": "env:AK",
                                                 "aws_secret_access_key": "secret:aws/secret"},
                             "options": {"region": "eu-west-1"}, "list_prices": True}
    assert config["gem"]["base_url"] == "https://generativelanguage.googleapis.com"
    assert config["vtx"] == {"kind": "vertex",
                             "base_url": "https://us-central1-aiplatform.googleapis.com",
                             "credential_refs": {"service_account": "file:/secrets/sa.json"},
                             "options": {"project": "demo-project", "location": "us-central1"},
                             "list_prices": True}


def test_clusters_verify_tls_to_the_default_hosts() -> None:
    policy = Policy.model_validate({"providers": PROVIDERS, "models": {
        "m": {"targets": [{"provider": "aws", "model": "anthropic.claude-v2:1"},
                          {"provider": "vtx", "model": "gemini-2.5-flash"}]}}})
    cluster = model_cluster(compiled(policy), "m")
    assert [m["match"]["sni"] for m in cluster["transport_socket_matches"]] == [
        "bedrock-runtime.eu-west-1.amazonaws.com", "us-central1-aiplatform.googleapis.com"]


@pytest.mark.parametrize(("entry", "field"), [
    ({"kind": "bedrock", "region": "us-east-1", "aws_access_key_id": "AKIAREALKEY",
      "aws_secret_access_key": "env:S"}, "providers.p.aws_access_key_id"),
    ({"kind": "bedrock", "aws_access_key_id": "env:A", "aws_secret_access_key": "env:S"},
     "providers.p.region"),
    ({"kind": "vertex", "project": "demo-project", "location": "us-central1",
      "service_account": "/secrets/sa.json"}, "providers.p.service_account"),
    ({"kind": "gemini", "api_key": "env:K", "region": "x"}, "providers.p.region"),
    ({"kind": "azure-openai", "api_key": "env:K"}, "providers.p.base_url"),
])
def test_errors_name_file_line_and_field(entry: dict[str, Any], field: str) -> None:
    text = yaml.safe_dump({"providers": {"p": entry}})
    with pytest.raises(PolicyError) as caught:
        load_documents({"team.yaml": text})
    issue = caught.value.issues[0]
    assert (issue.file, issue.field) == ("team.yaml", field)
    assert issue.line > 0


def test_default_policy_serves_gemini_when_its_key_is_set() -> None:
    (text,) = default_policy_documents({"GEMINI_API_KEY": "x"}).values()
    policy = load_documents({"default.yaml": text})
    assert policy.providers["gemini"].kind == "gemini"
    assert "gemini-2.5-flash" in policy.models

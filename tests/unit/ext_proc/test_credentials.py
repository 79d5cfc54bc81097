"""Each kind's credential, computed for the request as it is sent."""

from __future__ import annotations

import asyncio

import pytest

from ext_proc.credentials import CredentialUnavailable, Outgoing, credential_headers
from ext_proc.google_tokens import AccessTokens
from ext_proc.secrets import Secret
from ext_proc.view import ProviderView
from tests.fakes.cloud_server import CloudFake, Keys

KEYS = Keys()
PATH = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
BEDROCK = ProviderView("aws", "bedrock", "http://127.0.0.1:9999", None, {"region": KEYS.region},
                       credentials={
                           "aws_access_key_id": Secret(KEYS.aws_access_key_id),
                           "aws_secret_access_key": Secret(KEYS.aws_secret_access_key),
                           "aws_session_token": Secret(KEYS.aws_session_token)})


def signed(body: bytes) -> dict[str, str]:
    headers = dict(credential_headers(BEDROCK, Outgoing(PATH, body, "application/json")))
    return {**headers, "host": "127.0.0.1:9999", "content-type": "application/json"}


def test_sigv4_covers_host_encoded_path_and_body() -> None:
    fake = CloudFake()
    headers = signed(b'{"messages": []}')
    assert headers["x-amz-security-token"] == KEYS.aws_session_token
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token" in headers[
        "authorization"]
    assert fake._sigv4_problem(PATH, headers, b'{"messages": []}') == ""
    assert fake._sigv4_problem(PATH, headers, b'{"messages": [1]}') != ""
    assert fake._sigv4_problem(PATH.replace("%3A", ":"), headers, b'{"messages": []}') != ""
    assert fake._sigv4_problem(PATH, {**headers, "host": "elsewhere"}, b'{"messages": []}') != ""


def test_bedrock_without_aws_credentials_is_unavailable() -> None:
    provider = ProviderView("aws", "bedrock", "https://b.example", None, {"region": "us-east-1"})
    with pytest.raises(CredentialUnavailable):
        credential_headers(provider, Outgoing("/", b"", "application/json"))


@pytest.mark.parametrize(("kind", "header", "value"), [
    ("openai", "authorization", "Bearer k"), ("anthropic", "x-api-key", "k"),
    ("azure-openai", "api-key", "k"), ("gemini", "x-goog-api-key", "k")])
def test_key_headers(kind: str, header: str, value: str) -> None:
    provider = ProviderView("p", kind, "https://p.example", Secret("k"))
    assert credential_headers(provider, Outgoing("/", b"", "application/json")) == {
        header: value}


def test_vertex_without_a_token_is_unavailable_and_never_blocks() -> None:
    tokens = AccessTokens.__new__(AccessTokens)  # no key: only the cache is exercised
    tokens._token, tokens._expires, tokens._refreshing = None, 0.0, None
    tokens._clock = lambda: 1000.0
    provider = ProviderView("v", "vertex", "https://v.example", None, tokens=tokens)
    with pytest.raises(CredentialUnavailable):
        credential_headers(provider, Outgoing("/", b"", "application/json"))
    tokens._token, tokens._expires = "ya29.cached", 5000.0
    assert credential_headers(provider, Outgoing("/", b"", "application/json")) == {
        "authorization": "Bearer ya29.cached"}


def test_vertex_token_refresh_starts_in_the_background_near_expiry() -> None:
    refreshed: list[bool] = []

    class Tokens(AccessTokens):
        async def refresh(self) -> bool:
            refreshed.append(True)
            return True

    tokens = Tokens.__new__(Tokens)
    tokens._name, tokens._token, tokens._refreshing = "v", "ya29.old", None
    tokens._clock, tokens._expires = (lambda: 1000.0), 1100.0  # inside the refresh margin

    async def use() -> str | None:
        token = tokens.current()
        await asyncio.sleep(0)
        return token

    assert asyncio.run(use()) == "ya29.old"
    assert refreshed == [True]


def test_a_key_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        AccessTokens.from_secret("v", Secret("not json"))

"""The lane's SHA-256 (control_plane/compiler/lua/sha256.lua) agrees with hashlib inside a
real Envoy's LuaJIT, on every padding boundary: a gateway key that hashed differently would
never be admitted by Envoy."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from control_plane.compiler.lua_source import script
from tests.support.lua_envoy import lua_envoy

pytestmark = pytest.mark.integration

ECHO_DIGEST = """
function envoy_on_request(handle)
  local body = handle:body()
  local text = body and body:getBytes(0, body:length()) or ""
  handle:respond({[":status"] = "200"}, sha256_hex(text))
end
"""


@pytest.fixture(scope="module")
def digest_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with lua_envoy(script("sha256.lua") + ECHO_DIGEST, tmp_path_factory.mktemp("sha256")) as url:
        yield url


@pytest.mark.parametrize("length", [0, 1, 3, 47, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000])
def test_digests_match_hashlib_on_every_padding_boundary(digest_url: str, length: int) -> None:
    message = bytes((7 * i + 13) % 256 for i in range(length))  # every byte value, not text
    digest = httpx.post(digest_url, content=message, timeout=5).text
    assert digest == hashlib.sha256(message).hexdigest()

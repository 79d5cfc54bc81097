"""Envoy's reading of a request body (control_plane/compiler/lua/request_fields.lua), run in a
real Envoy's LuaJIT: for bodies valid and not, it finds what the workers' JSON parser (orjson)
finds: whether the body is JSON at all (RFC 8259: strings of UTF-8 with JSON's escapes and
surrogates only in pairs, numbers within a double), its model, whether it streams and asks
for the usage (OpenAI's `stream_options.include_usage`), and its output limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from control_plane.compiler.lua_source import script
from control_plane.compiler.request_reader import MAX_MODEL_BYTES, request_reader_source
from tests.support.lua_envoy import lua_envoy

pytestmark = pytest.mark.integration

# POST /: the body's fields as JSON, or {"error": <the body_error>}.
_HARNESS = """
local function field(value)
  if type(value) == "string" then
    return json_quoted(value)
  elseif type(value) == "number" then
    return string.format("%.17g", value)
  end
  return tostring(value)
end

function envoy_on_request(handle)
  local body = handle:body()
  local fields, refused = request_fields(body and body:getBytes(0, body:length()) or "")
  if fields == nil then
    handle:respond({[":status"] = "200"}, '{"error":"' .. refused .. '"}')
    return
  end
  local out = {}
  for _, name in ipairs({"model", "stream", "include_usage", "max_tokens",
                         "max_completion_tokens"}) do
    if fields[name] ~= nil then
      out[#out + 1] = '"' .. name .. '":' .. field(fields[name])
    end
  end
  handle:respond({[":status"] = "200"}, "{" .. table.concat(out, ",") .. "}")
end
"""

CHAT = b'"messages":[{"role":"user","content":"Hi"}]'


@pytest.fixture(scope="module")
def reader_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    source = "\n".join((script("json_text.lua"), request_reader_source(), _HARNESS))
    with lua_envoy(source, tmp_path_factory.mktemp("request-fields")) as url:
        yield url


def _parsed(body: bytes) -> dict[str, Any]:
    """What the workers read from the body."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"error": "invalid_json"}
    model = value.get("model") if isinstance(value, dict) else None
    if not isinstance(model, str) or not model or len(model.encode()) > MAX_MODEL_BYTES:
        return {"error": "missing_model"}
    fields: dict[str, Any] = {"model": model}
    if isinstance(value.get("stream"), bool):
        fields["stream"] = value["stream"]
    options = value.get("stream_options")
    if isinstance(options, dict) and isinstance(options.get("include_usage"), bool):
        fields["include_usage"] = options["include_usage"]
    for name in ("max_tokens", "max_completion_tokens"):
        number = value.get(name)
        if isinstance(number, int | float) and not isinstance(number, bool):
            fields[name] = number
    return fields


BODIES = {
    "chat": b'{"model":"gpt-4o-mini",' + CHAT + b'}',
    "spaced": b' \r\n\t{ "model" : "gpt-4o-mini" ,\n "stream" : true } \n',
    "every field": b'{"model":"m","stream":false,"stream_options":{"include_usage":true},'
                   b'"max_tokens":100,"max_completion_tokens":2.5e2,' + CHAT + b'}',
    "usage declined": b'{"model":"m","stream":true,"stream_options":{"include_usage":false}}',
    "fields of other types": b'{"model":"m","stream":"yes","max_tokens":"7",'
                             b'"stream_options":{"include_usage":1}}',
    "options not an object": b'{"model":"m","stream_options":[true]}',
    "options empty": b'{"model":"m","stream_options":{}}',
    "options' key escaped, nested, repeated": b'{"model":"m","stream_options":{"x":'
        b'{"include_usage":false},"include_\\u0075sage":false,"include_usage":true}}',
    "options' last key escaped": b'{"model":"m","stream_options":{"include_usage":true,'
        b'"include_\\u0075sage":false}}',
    "nested model is not the model": b'{"messages":[{"model":"m"}],"tools":{"model":"m"}}',
    "model twice, the last wins": b'{"model":"a","model":"b"}',
    "model then not a string": b'{"model":"a","model":null}',
    "escaped key and value": b'{"m\\u006fdel":"gpt\\u002d4o \\ud83d\\ude00"}',
    "every escape": b'{"model":"\\"\\\\\\/\\b\\f\\n\\r\\t","x":"\\u00e9"}',
    "utf-8": '{"model":"m","messages":"caf\u00e9 \u65e5\u672c \U0001f600"}'.encode(),
    "numbers": b'{"model":"m","a":[0,-0,1.5,-2e-3,1E+2,123456789012345678901234]}',
    "literals": b'{"model":"m","a":[true,false,null,{},[],{"b":[{}]}]}',
    "deep": b'{"model":"m","a":' + b"[" * 1023 + b"]" * 1023 + b"}",
    "too deep": b'{"model":"m","a":' + b"[" * 1024 + b"]" * 1024 + b"}",
    "too deep an array": b"[" * 1025 + b"]" * 1025,
    "model empty": b'{"model":""}',
    "model as long as a model may be": b'{"model":"' + b"m" * MAX_MODEL_BYTES + b'"}',
    "model too long": b'{"model":"' + b"m" * (MAX_MODEL_BYTES + 1) + b'"}',
    "model a number": b'{"model":5}',
    "model an object": b'{"model":{"name":"m"}}',
    "no model": b'{' + CHAT + b'}',
    "empty object": b"{}",
    "an array": b'[{"model":"m"}]',
    "a string": b'"model"',
    "unfinished": b'{"model": "gpt-test", ',
    "unclosed string": b'{"model":"m',
    "trailing comma": b'{"model":"m",}',
    "trailing comma inside": b'{"model":"m","a":[1,2,]}',
    "missing colon": b'{"model" "m"}',
    "single quotes": b"{'model':'m'}",
    "text after": b'{"model":"m"} {}',
    "leading zero": b'{"model":"m","a":01}',
    "bare fraction": b'{"model":"m","a":.5}',
    "infinite number": b'{"model":"m","a":1e400}',
    "NaN": b'{"model":"m","a":NaN}',
    "bad literal": b'{"model":"m","a":tru}',
    "control character": b'{"model":"m","a":"\x01"}',
    "bad escape": b'{"model":"m","a":"\\x"}',
    "short unicode escape": b'{"model":"m","a":"\\u12"}',
    "lone first surrogate": b'{"model":"m","a":"\\ud800"}',
    "lone second surrogate": b'{"model":"m","a":"\\udc00x"}',
    "first surrogate then text": b'{"model":"m","a":"\\ud800\\u0041"}',
    "invalid utf-8": b'{"model":"m","a":"\xff"}',
    "overlong utf-8": b'{"model":"m","a":"\xc0\xaf"}',
    "utf-8 surrogate": b'{"model":"m","a":"\xed\xa0\x80"}',
    "byte order mark": b'\xef\xbb\xbf{"model":"m"}',
    "unclosed deep": b'{"model":"m","a":' + b"[" * 100_000,
    "only space": b"  ",
}


@pytest.mark.parametrize("case", BODIES)
def test_the_reader_finds_what_the_workers_parser_finds(reader_url: str, case: str) -> None:
    body = BODIES[case]
    response = httpx.post(reader_url, content=body, timeout=10)
    assert response.status_code == 200
    assert orjson.loads(response.content) == _parsed(body)


def test_the_cases_cover_each_outcome() -> None:
    outcomes = {_parsed(body).get("error", "fields") for body in BODIES.values()}
    assert outcomes == {"fields", "invalid_json", "missing_model"}

"""Fake Azure OpenAI, Bedrock, Gemini API, Vertex AI and Google OAuth2 token endpoints on one
loopback port, each following its public API reference (fixtures/README.md cites the pages).

Each checks its credential as the real service does, and refuses with that service's error
shape: Azure the api-key header, Gemini x-goog-api-key, Vertex a bearer token this server's
/token endpoint issued, Bedrock a SigV4 signature recomputed with botocore from the request as
received (host, raw path, body). Bedrock streams are real binary event-stream frames, sent in
small pieces that cut through frames.

Every answer reports the token counts of `CloudFake.usage` in its provider's own way (what each
counts as input, where cache reads and writes and reasoning go). With `hold_after` set, a
streamed answer stops after that many events and holds the connection open until the gateway
hangs up, as a provider still generating does when its client goes away.
"""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes import eventstream
from tests.fakes.openai_server import chat_chunks, chat_completion, embeddings

_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")
_GOOGLE_MODEL = re.compile(r"/models/([^/:]+):(\w+)$")


@dataclass(frozen=True)
class Keys:
    azure: str = "azure-key"
    gemini: str = "gemini-key"
    aws_access_key_id: str = "AKIDEXAMPLE"
    aws_secret_access_key: str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    aws_session_token: str = "session-token"
    region: str = "us-east-1"


@dataclass(frozen=True)
class FakeUsage:
    """The tokens of one answer: uncached prompt, cache reads and writes, visible output and
    reasoning. Each provider reports them in its documented shape (fixtures/README.md)."""

    prompt: int = 11
    cached_read: int = 0
    cache_write: int = 0
    output: int = 7
    reasoning: int = 0

    def openai(self) -> dict[str, Any]:
        """Azure OpenAI: prompt_tokens counts every prompt token, cached_tokens among them;
        there is no cache-write count (writes are billed as ordinary input), and
        completion_tokens includes the reasoning tokens."""
        prompt = self.prompt + self.cache_write + self.cached_read
        completion = self.output + self.reasoning
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": self.cached_read},
                "completion_tokens_details": {"reasoning_tokens": self.reasoning}}

    def bedrock(self) -> dict[str, Any]:
        """Converse TokenUsage: cache reads and writes are counted apart from inputTokens;
        outputTokens includes reasoning, which Converse does not count apart."""
        usage = {"inputTokens": self.prompt, "outputTokens": self.output + self.reasoning}
        if self.cached_read or self.cache_write:
            usage |= {"cacheReadInputTokens": self.cached_read,
                      "cacheWriteInputTokens": self.cache_write}
        return usage | {"totalTokens": sum(usage.values())}

    def gemini(self, final: bool = True) -> dict[str, Any]:
        """usageMetadata: promptTokenCount includes cachedContentTokenCount (a cache is
        written by its own API call, so writes here are ordinary input); thoughts are counted
        apart from candidates. A stream's events before the last carry the prompt only."""
        prompt = self.prompt + self.cache_write + self.cached_read
        usage = {"promptTokenCount": prompt}
        if self.cached_read:
            usage["cachedContentTokenCount"] = self.cached_read
        if final:
            usage["candidatesTokenCount"] = self.output
            if self.reasoning:
                usage["thoughtsTokenCount"] = self.reasoning
        counted = prompt + usage.get("candidatesTokenCount", 0) + usage.get(
            "thoughtsTokenCount", 0)
        return usage | {"totalTokenCount": counted}


@dataclass
class CloudFake:
    keys: Keys = field(default_factory=Keys)
    usage: FakeUsage = field(default_factory=FakeUsage)
    hold_after: int | None = None  # streamed answers: events sent before holding
    received: list[dict[str, Any]] = field(default_factory=list)
    tokens_issued: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> CloudFake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.received.append({"path": self.path, "headers": headers, "body": body})
                fake.route(self, headers, body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def route(self, handler: BaseHTTPRequestHandler, headers: dict[str, str],
              raw: bytes) -> None:
        path = urllib.parse.urlsplit(handler.path).path
        if path == "/token":
            self._token(handler, raw)
        elif path.startswith("/openai/deployments/"):
            self._azure(handler, headers, orjson.loads(raw))
        elif path.startswith("/model/"):
            self._bedrock(handler, headers, raw)
        elif path.startswith("/v1beta/models/"):
            if headers.get("x-goog-api-key") != self.keys.gemini:
                _google_error(handler, 400, "API key not valid. Please pass a valid API key.",
                              "INVALID_ARGUMENT")
                return
            self._google(handler, orjson.loads(raw))
        elif path.startswith("/v1/projects/"):
            token = headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.tokens_issued:
                _google_error(handler, 401, "Request had invalid authentication credentials.",
                              "UNAUTHENTICATED")
                return
            self._google(handler, orjson.loads(raw))
        else:
            _send(handler, 404, "application/json", b'{"error": "no such path"}')

    def _stream(self, handler: BaseHTTPRequestHandler, content_type: str,
                events: list[bytes]) -> None:
        _stream(handler, content_type, events, self.hold_after)

    # --- Google OAuth2 token endpoint (service-account JWT bearer grant) ---
    def _token(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        form = urllib.parse.parse_qs(raw.decode())
        assertion = form.get("assertion", [""])[0]
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"] or \
                assertion.count(".") != 2:
            _send(handler, 400, "application/json", b'{"error": "invalid_grant"}')
            return
        token = f"ya29.fake-{len(self.tokens_issued)}"
        self.tokens_issued.append(token)
        _send(handler, 200, "application/json", orjson.dumps(
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))

    # --- Azure OpenAI ---
    def _azure(self, handler: BaseHTTPRequestHandler, headers: dict[str, str],
               body: dict[str, Any]) -> None:
        parts = urllib.parse.urlsplit(handler.path)
        if headers.get("api-key") != self.keys.azure:
            _send(handler, 401, "application/json", orjson.dumps({"error": {
                "code": "401", "message": "Access denied due to invalid subscription key."}}))
            return
        if "api-version" not in urllib.parse.parse_qs(parts.query):
            _send(handler, 404, "application/json", orjson.dumps({"error": {
                "code": "404", "message": "Resource not found"}}))
            return
        deployment = parts.path.split("/")[3]
        body = {**body, "model": deployment}
        usage = self.usage.openai()
        if parts.path.endswith("/embeddings"):
            _send(handler, 200, "application/json", orjson.dumps(embeddings(body)))
        elif body.get("stream"):
            self._stream(handler, "text/event-stream", [
                b"data: " + orjson.dumps(c) + b"\n\n" for c in chat_chunks(body, "azure", usage)
            ] + [b"data: [DONE]\n\n"])
        elif body.get("tools"):
            completion = chat_completion(body, "azure", usage)
            completion["choices"][0].update(finish_reason="tool_calls", message={
                "role": "assistant", "content": None, "tool_calls": [{
                    "id": "call_az1", "type": "function", "function": {
                        "name": body["tools"][0]["function"]["name"],
                        "arguments": '{"city": "Paris"}'}}]})
            _send(handler, 200, "application/json", orjson.dumps(completion))
        else:
            _send(handler, 200, "application/json",
                  orjson.dumps(chat_completion(body, "azure", usage)))

    # --- Bedrock runtime ---
    def _bedrock(self, handler: BaseHTTPRequestHandler, headers: dict[str, str],
                 raw: bytes) -> None:
        problem = self._sigv4_problem(handler.path, headers, raw)
        if problem:
            _send(handler, 403, "application/json", orjson.dumps({"message": problem}),
                  {"x-amzn-errortype": "InvalidSignatureException"})
            return
        _, _, model_id, action = handler.path.split("/", 3)
        model = urllib.parse.unquote(model_id)
        body = orjson.loads(raw)
        if model.startswith("bad."):
            _send(handler, 400, "application/json",
                  b'{"message": "The provided model identifier is invalid."}',
                  {"x-amzn-errortype": "ValidationException"})
            return
        if action == "invoke":
            _send(handler, 200, "application/json", orjson.dumps({
                "embedding": [0.25, -0.5, 0.75], "inputTextTokenCount": 2}),
                  {"x-amzn-bedrock-input-token-count": "2"})
            return
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            _send(handler, 400, "application/json",
                  b'{"message": "Malformed input request: messages is required"}',
                  {"x-amzn-errortype": "ValidationException"})
            return
        text = f"bedrock answers {model}"
        usage = self.usage.bedrock()
        tool = _wants_tool(body, "toolConfig", "toolResult")
        if action == "converse":
            content: list[dict[str, Any]] = [{"text": text}]
            if tool:
                content = [{"toolUse": {"toolUseId": "tooluse_1", "name": tool,
                                        "input": {"city": "Paris"}}}]
            _send(handler, 200, "application/json", orjson.dumps({
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": "tool_use" if tool else "end_turn", "usage": usage,
                "metrics": {"latencyMs": 5}}))
            return
        frames = [eventstream.event("messageStart", {"role": "assistant"})]
        if tool:
            frames += [
                eventstream.event("contentBlockStart", {"contentBlockIndex": 0, "start": {
                    "toolUse": {"toolUseId": "tooluse_1", "name": tool}}}),
                eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {
                    "toolUse": {"input": '{"city": "Paris"}'}}})]
        else:
            frames += [eventstream.event("contentBlockDelta", {
                "contentBlockIndex": 0, "delta": {"text": w if i == 0 else " " + w}})
                for i, w in enumerate(text.split(" "))]
        frames += [eventstream.event("contentBlockStop", {"contentBlockIndex": 0}),
                   eventstream.event("messageStop", {
                       "stopReason": "tool_use" if tool else "end_turn"}),
                   eventstream.event("metadata", {"usage": usage, "metrics": {"latencyMs": 5}})]
        self._stream(handler, "application/vnd.amazon.eventstream", frames)

    def _sigv4_problem(self, path: str, headers: dict[str, str], body: bytes) -> str:
        match = _AUTH.match(headers.get("authorization", ""))
        keys = self.keys
        if match is None:
            return "Missing Authentication Token"
        access_key, date, region, service, signed, signature = match.groups()
        if (access_key, region, service) != (keys.aws_access_key_id, keys.region, "bedrock"):
            return "The security token included in the request is invalid."
        if headers.get("x-amz-security-token") != keys.aws_session_token:
            return "The security token included in the request is invalid."
        names = signed.split(";")
        request = AWSRequest(method="POST", url=f"http://{headers.get('host', '')}{path}",
                             data=body, headers={name: headers.get(name, "") for name in names})
        request.context["timestamp"] = headers.get("x-amz-date", "")
        if not request.context["timestamp"].startswith(date):
            return "Signature date does not match the credential scope."
        auth = SigV4Auth(Credentials(keys.aws_access_key_id, keys.aws_secret_access_key,
                                     keys.aws_session_token), "bedrock", keys.region)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)),
                                  request)
        if expected != signature:
            return ("The request signature we calculated does not match the signature you "
                    "provided.")
        return ""

    # --- Gemini API and Vertex AI (same bodies) ---
    def _google(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        match = _GOOGLE_MODEL.search(urllib.parse.urlsplit(handler.path).path)
        if match is None:
            _google_error(handler, 404, "Method not found.", "NOT_FOUND")
            return
        model, method = match.groups()
        if method == "batchEmbedContents":
            _send(handler, 200, "application/json", orjson.dumps({"embeddings": [
                {"values": [0.5, 0.25]} for _ in body.get("requests", [])]}))
            return
        if method == "predict":
            _send(handler, 200, "application/json", orjson.dumps({"predictions": [
                {"embeddings": {"values": [0.5, 0.25], "statistics": {
                    "token_count": 2, "truncated": False}}}
                for _ in body.get("instances", [])]}))
            return
        if not isinstance(body.get("contents"), list) or not body["contents"]:
            _google_error(handler, 400, "* GenerateContentRequest.contents: contents is not "
                                        "specified", "INVALID_ARGUMENT")
            return
        tool = _wants_tool(body, "tools", "functionResponse")
        if tool:
            parts: list[dict[str, Any]] = [
                {"functionCall": {"name": tool, "args": {"city": "Paris"}}}]
        else:
            parts = [{"text": f"google answers {model}"}]

        def response(chunk_parts: list[dict[str, Any]], final: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": chunk_parts},
                                         "index": 0}
            if final:
                candidate["finishReason"] = "STOP"
            return {"candidates": [candidate], "usageMetadata": self.usage.gemini(final),
                    "modelVersion": model, "responseId": "resp-1"}

        if method == "generateContent":
            _send(handler, 200, "application/json", orjson.dumps(response(parts, True)))
        elif method == "streamGenerateContent":
            words = [] if tool else parts[0]["text"].split(" ")
            events = [response([{"text": w if i == 0 else " " + w}], False)
                      for i, w in enumerate(words)]
            events.append(response(parts if tool else [{"text": ""}], True))
            self._stream(handler, "text/event-stream",
                         [b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in events])
        else:
            _google_error(handler, 404, "Method not found.", "NOT_FOUND")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client closing its idle keep-alive connection is not an error here."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _wants_tool(body: dict[str, Any], tools_key: str, answer_key: str) -> str:
    """The first tool's name when tools are offered and the last turn does not answer one."""
    if not body.get(tools_key):
        return ""
    turns = body.get("messages") or body.get("contents") or []
    last = turns[-1].get("content") or turns[-1].get("parts") or []
    if any(answer_key in part for part in last):
        return ""
    if tools_key == "toolConfig":
        return str(body["toolConfig"]["tools"][0]["toolSpec"]["name"])
    return str(body["tools"][0]["functionDeclarations"][0]["name"])


def _google_error(handler: BaseHTTPRequestHandler, status: int, message: str,
                  code: str) -> None:
    _send(handler, status, "application/json", orjson.dumps(
        {"error": {"code": status, "message": message, "status": code}}))


def _send(handler: BaseHTTPRequestHandler, status: int, content_type: str, payload: bytes,
          extra: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    handler.send_header("content-type", content_type)
    handler.send_header("content-length", str(len(payload)))
    handler.send_header("x-amzn-requestid", "req-0001")
    for key, value in (extra or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(payload)


def _stream(handler: BaseHTTPRequestHandler, content_type: str, events: list[bytes],
            hold_after: int | None = None, piece: int = 37) -> None:
    """Chunked transfer in pieces that cut through frames and events; with `hold_after`, the
    first events in one piece, then nothing until the peer hangs up."""
    handler.send_response(200)
    handler.send_header("content-type", content_type)
    handler.send_header("transfer-encoding", "chunked")
    handler.end_headers()

    def chunk(part: bytes) -> None:
        handler.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        handler.wfile.flush()

    if hold_after is not None:
        chunk(b"".join(events[:hold_after]))
        _wait_for_hangup(handler.connection)
        handler.close_connection = True
        return
    data = b"".join(events)
    for start in range(0, len(data), piece):
        chunk(data[start:start + piece])
        time.sleep(0.001)
    handler.wfile.write(b"0\r\n\r\n")


def _wait_for_hangup(connection: socket.socket, timeout_s: float = 15.0) -> None:
    connection.settimeout(timeout_s)
    try:
        while connection.recv(4096):
            pass
    except OSError:
        pass  # reset by the peer, or the timeout: either way the answer is over

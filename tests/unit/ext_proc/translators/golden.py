"""Golden-file checks shared by the translator tests.

Inputs are the fixtures of tests/fixtures/<schema>/; expected outputs are under
tests/fixtures/golden/<pair>/. `UPDATE_GOLDEN=1` rewrites the expected outputs instead of
comparing, so an intended change is one command and a reviewed diff.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from ext_proc.translators.base import LocalReply, TranslationError, Translator, Usage

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
JSON_HEADERS = {"content-type": "application/json"}
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8"}

Factory = Callable[[], Translator]


def cases(schema: str, kind: str) -> list[Path]:
    return sorted((FIXTURES / schema / kind).iterdir())


def ids(paths: list[Path]) -> list[str]:
    return [path.stem for path in paths]


def assert_golden(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8")


def pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def usage_json(usage: Usage | None) -> Any:
    return None if usage is None else asdict(usage)


def check_request(make: Factory, fixture: Path, golden: Path) -> None:
    """The upstream request, or the refusal when the backend cannot take this request."""
    raw = fixture.read_bytes()
    try:
        result = make().request(orjson.loads(raw), raw)
    except TranslationError as exc:
        assert_golden(golden / f"request-{fixture.stem}.json",
                      pretty({"refused": {"status": exc.status, "message": str(exc)}}))
        return
    assert not isinstance(result, LocalReply)
    body = None if result.body is None else orjson.loads(result.body)
    assert_golden(golden / f"request-{fixture.stem}.json",
                  pretty({"path": result.path, "headers": dict(result.headers), "body": body}))


def check_response(make: Factory, fixture: Path, golden: Path, status: int = 200) -> None:
    translator = make()
    assert translator.response_body_mode(status, JSON_HEADERS) in ("buffered", "none")
    translated = translator.response_body(fixture.read_bytes())
    body = None if translated.body is None else orjson.loads(translated.body)
    prefix = "response" if status == 200 else "error"
    assert_golden(golden / f"{prefix}-{fixture.stem}.json",
                  pretty({"body": body, "usage": usage_json(translated.usage)}))


def error_status(fixture: Path) -> int:
    return int(fixture.stem.split("-", 1)[0])


def run_stream(make: Factory, pieces: list[bytes],
               headers: Mapping[str, str] = SSE_HEADERS) -> tuple[bytes, Usage | None]:
    """Feed the pieces in order; the joined output and the last usage reported."""
    translator = make()
    assert translator.response_body_mode(200, headers) == "streamed"
    out: list[bytes] = []
    usage = None
    for index, piece in enumerate(pieces):
        translated = translator.response_chunk(piece, index == len(pieces) - 1)
        out.append(piece if translated.body is None else translated.body)
        usage = translated.usage or usage
    return b"".join(out), usage


def check_stream(make: Factory, fixture: Path, golden: Path, data: bytes,
                 headers: Mapping[str, str] = SSE_HEADERS) -> None:
    """`data` is the fixture as the backend sends it (binary frames for an event stream)."""
    body, usage = run_stream(make, [data], headers)
    assert_golden(golden / f"stream-{fixture.stem}.sse", body.decode())
    assert_golden(golden / f"stream-{fixture.stem}.usage.json", pretty(usage_json(usage)))


def check_every_split(make: Factory, data: bytes,
                      headers: Mapping[str, str] = SSE_HEADERS) -> None:
    """One split point per run, at every byte: the output must not depend on where."""
    whole = run_stream(make, [data], headers)
    for cut in range(len(data) + 1):
        assert run_stream(make, [data[:cut], data[cut:]], headers) == whole, f"split at {cut}"
    assert run_stream(make, [data[i:i + 1] for i in range(len(data))], headers) == whole

"""The lane's Lua translations on the benchmark's payloads, in LuaJIT alone: the instructions
it takes to translate a request, a whole reply and a stream, each way.

Counted by callgrind in Debian's `luajit` (a 2.1 like Envoy's, not the same build: counts
come close to what Envoy spends in the Lua, not to the instruction). Each part runs in two
processes, N and 3N times after a first run that checks it gives something, and its count is
the difference divided by 2N: starting LuaJIT and loading the code fall out. Where LuaJIT's
hot counters fall, and so which traces it compiles, changes from one process to the next,
so each part is counted `--repeats` times and given as the median and the range. Inside
Envoy the same code varies as much, and the rest of Envoy's count hides changes of a few
thousand instructions that this count shows.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import callgrind, fakes
from bench.datapath import ensure_command
from control_plane.compiler.translations import translation_source

COUNT_TIMEOUT_S = 300.0

# By part: the translation, what it translates, and the benchmark's payload for it.
PARTS: dict[str, tuple[str, str, bytes]] = {
    "openai_anthropic request": ("openai_anthropic", "request",
                                 fakes.chat_request("claude-bench")),
    "openai_anthropic reply": ("openai_anthropic", "reply", fakes.ANTHROPIC_MESSAGE),
    "openai_anthropic stream": ("openai_anthropic", "stream", fakes.anthropic_stream()),
    "anthropic_openai request": ("anthropic_openai", "request",
                                 fakes.messages_request("gpt-bench")),
    "anthropic_openai reply": ("anthropic_openai", "reply", fakes.CHAT_COMPLETION),
    "anthropic_openai stream": ("anthropic_openai", "stream", fakes.chat_stream()),
}

# Appended to the translations (one chunk, so it sees their locals). Arguments: the
# translation, the part, the payload's file, how many times. A request's body is one the
# lane's reader has checked: the benchmark's are JSON.
_DRIVER = """
local translation, part = TRANSLATIONS[arg[1]], arg[2]
local file = io.open(arg[3], "rb")
local payload = file:read("*a")
file:close()
local route = {model = "bench", model_json = '"bench"'}
local run
if part == "request" then
  run = function() return translation.request(payload, route) end
elseif part == "reply" then
  run = function() return translation.reply(200, payload, "bench") end
else
  run = function() return translation.stream("bench", true, function() end):feed(payload) end
end
local out = run()
assert(out ~= nil and out ~= "", "the translation gave nothing")
local started = os.clock()
for _ = 1, tonumber(arg[4]) do
  run()
end
io.write(string.format("%.3f", (os.clock() - started) / tonumber(arg[4]) * 1e6))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--times", type=int, default=1000, help="N: runs in the first process")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--label", default="", help="what this run measures (recorded)")
    parser.add_argument("--name", default="lua", help="results file: results/NAME.json")


def _driver(luajit: str, script: Path, part: str, payload: Path, times: int) -> list[str]:
    translation, what, _ = PARTS[part]
    return [luajit, str(script), translation, what, str(payload), str(times)]


def _output(command: list[str]) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True,
                          timeout=COUNT_TIMEOUT_S).stdout


def _instructions(command: list[str], work: Path) -> int:
    """The instructions of `command`, whole, run under callgrind."""
    _output([*callgrind.valgrind_command(work), *command])
    [dump] = work.glob("callgrind.*")
    counted = callgrind.summary(dump)
    dump.unlink()
    return counted


def count(luajit: str, script: Path, part: str, payload: Path, times: int, work: Path) -> int:
    """Instructions one run of `part` takes, less what starting and loading take."""
    few = _instructions(_driver(luajit, script, part, payload, times), work)
    many = _instructions(_driver(luajit, script, part, payload, 3 * times), work)
    return round((many - few) / (2 * times))


def run(args: argparse.Namespace) -> dict[str, Any]:
    luajit = ensure_command("luajit", "luajit")
    version = subprocess.run([luajit, "-v"], check=True, capture_output=True,
                             text=True).stdout.strip()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-lua-") as tmp:
        work = Path(tmp)
        script = work / "translations.lua"
        script.write_text("\n".join((translation_source(), _DRIVER)))
        for part in args.parts:
            payload = work / "payload"
            payload.write_bytes(PARTS[part][2])
            counts = [count(luajit, script, part, payload, args.times, work)
                      for _ in range(args.repeats)]
            microseconds = _output(_driver(luajit, script, part, payload, 20 * args.times))
            result = {"part": part, "payload_bytes": len(PARTS[part][2]),
                      "instructions": round(statistics.median(counts)),
                      "instructions_range": [min(counts), max(counts)],
                      "us_per_run": float(microseconds)}
            print(f"{part:26} {result['instructions']:>9,} instructions "
                  f"({min(counts):,}-{max(counts):,}), {result['us_per_run']:.1f} µs "
                  f"({result['payload_bytes']:,} bytes)", flush=True)
            results.append(result)
    return {"kind": "lua", "label": args.label, "luajit": version, "parts": results}

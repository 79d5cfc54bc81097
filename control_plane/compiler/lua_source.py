"""Lua for Envoy's Lua filters: the scripts shipped in control_plane/compiler/lua, and plain
data written as Lua tables for the scripts to read."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any


def script(name: str) -> str:
    return resources.files("control_plane.compiler").joinpath("lua", name).read_text()


def to_lua(value: Any) -> str:
    """A Lua expression for plain data: tables, strings, numbers, booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _lua_string(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"[{_lua_string(str(k))}]={to_lua(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "{" + ",".join(to_lua(v) for v in value) + "}"
    raise TypeError(f"no Lua form for {type(value).__name__}")


def _lua_string(text: str) -> str:
    """Every byte outside printable ASCII, and the quote and backslash, as a decimal escape:
    any model name or path reads back exactly."""
    escaped = "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}"
                      for b in text.encode())
    return f'"{escaped}"'

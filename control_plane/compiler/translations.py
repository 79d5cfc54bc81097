"""Translations Envoy makes itself: the Lua the lane translates requests with, and the filter
that translates their replies back (control_plane/compiler/lua/openai_anthropic.lua and
anthropic_openai.lua, on translation_common.lua and the JSON reader json_text.lua). The
workers' translators stay the reference (TranslatedInEnvoy): the Lua takes only the requests
it knows all of, and the constants it shares with them come from them here."""

from __future__ import annotations

from typing import Any

from control_plane.compiler.direct import only_marked
from control_plane.compiler.lua_source import script, to_lua
from control_plane.xds.resources import any_of
from ext_proc.contract import (
    DIRECT_METADATA_KEY,
    INCLUDE_USAGE_KEY,
    METADATA_NAMESPACE,
    REPLY_FINAL_FIELDS,
    REPLY_USAGE_FIELDS,
    REPLY_USAGE_KEY,
    TRANSLATED_HEADER,
)
from ext_proc.errors import ERROR_KINDS
from ext_proc.translators.common import FINISH_REASONS, STOP_REASONS
from ext_proc.translators.openai_anthropic_request import DEFAULT_MAX_TOKENS

LUA = "envoy.extensions.filters.http.lua.v3.Lua"
_COMMON = ("json_text.lua", "translation_common.lua")
_SCRIPTS = (*_COMMON, "openai_anthropic.lua", "anthropic_openai.lua")


def translation_tables() -> dict[str, Any]:
    return {
        "default_max_tokens": DEFAULT_MAX_TOKENS,
        "finish_reasons": FINISH_REASONS,
        "stop_reasons": STOP_REASONS,
        "error_kinds": {str(status): [kind.openai_type, kind.openai_code, kind.anthropic_type]
                        for status, kind in ERROR_KINDS.items()},
        "usage_fields": list(REPLY_USAGE_FIELDS),
        "final_usage_fields": list(REPLY_FINAL_FIELDS),
        "names": {"namespace": METADATA_NAMESPACE, "direct": DIRECT_METADATA_KEY,
                  "include_usage": INCLUDE_USAGE_KEY, "reply_usage": REPLY_USAGE_KEY},
    }


def translation_source() -> str:
    """`TRANSLATION` (the constants above), the JSON reader and `TRANSLATIONS`, by name."""
    return _source(_SCRIPTS)


def stream_usage_source() -> str:
    """The stream usage reader and stripper (sse_usage.lua), on what the translations share."""
    return _source((*_COMMON, "sse_usage.lua"))


def _source(scripts: tuple[str, ...]) -> str:
    return "\n".join((f"local TRANSLATION = {to_lua(translation_tables())}",
                      *(script(name) for name in scripts)))


def translated_reply_filter() -> dict[str, Any]:
    """Translates the replies to the requests the lane translated, and only those (the others
    skip it and pay nothing for Lua on their reply), and writes their usage fields where the
    reply's usage parse, which skips them (direct.reply_usage), would have."""
    translator = {"name": "switchboard.translated_reply", "typed_config": any_of(LUA, {
        "default_source_code": {"inline_string": "\n".join((
            translation_source(), script("translated_reply.lua")))},
        "stat_prefix": "translated_reply"})}
    return only_marked(translator, TRANSLATED_HEADER)

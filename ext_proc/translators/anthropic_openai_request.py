"""An Anthropic Messages request rewritten as an OpenAI chat completions request.

tool_result blocks become `tool` messages placed before the rest of their user turn, as
OpenAI expects each tool answer right after the assistant turn that asked for it.
"""

from __future__ import annotations

from typing import Any

import orjson

from ext_proc.translators.base import TranslationError
from ext_proc.translators.common import field, objects


def to_openai(body: dict[str, Any], model: str) -> dict[str, Any]:
    max_tokens = field(body, "max_tokens", int)
    if max_tokens is None or max_tokens < 1:
        raise TranslationError("'max_tokens' is required and must be at least 1")
    messages: list[dict[str, Any]] = []
    if (system := body.get("system")) is not None:
        messages.append({"role": "system", "content": _text(system, "system")})
    turns = objects(body.get("messages"), "messages")
    if not turns:
        raise TranslationError("'messages' must be a non-empty list")
    for turn in turns:
        role = turn.get("role")
        if role == "user":
            messages.extend(_user(turn.get("content")))
        elif role == "assistant":
            messages.append(_assistant(turn.get("content")))
        else:
            raise TranslationError(f"unsupported message role {role!r}")
    out: dict[str, Any] = {"model": model, "messages": messages,
                           "max_completion_tokens": max_tokens}
    for name in ("temperature", "top_p"):
        if (value := field(body, name, (int, float))) is not None:
            out[name] = value
    stop = field(body, "stop_sequences", list)
    if stop:
        if not all(isinstance(s, str) for s in stop):
            raise TranslationError("'stop_sequences' must be a list of strings")
        out["stop"] = stop
    if field(body, "stream", bool):
        # Without include_usage an OpenAI stream reports no tokens at all.
        out.update(stream=True, stream_options={"include_usage": True})
    metadata = field(body, "metadata", dict)
    if metadata and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    out.update(_tools(body))
    return out


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return objects(content, where)


def _text(content: Any, where: str) -> str:
    texts = []
    for block in _blocks(content, where):
        if block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise TranslationError(f"'{where}' blocks must be text")
        texts.append(block["text"])
    return "".join(texts) if isinstance(content, list) else texts[0]


def _user(content: Any) -> list[dict[str, Any]]:
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in _blocks(content, "user content"):
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block)}})
        elif kind == "tool_result":
            tool_messages.append(_tool_result(block))
        else:
            raise TranslationError(f"unsupported content block {kind!r} for this provider")
    if not parts:
        return tool_messages
    plain = all(p["type"] == "text" for p in parts)
    user = {"role": "user",
            "content": "".join(p["text"] for p in parts) if plain and len(parts) == 1 else parts}
    return [*tool_messages, user]


def _image_url(block: dict[str, Any]) -> str:
    source = block.get("source")
    if isinstance(source, dict):
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            return str(source["url"])
        media, data = source.get("media_type"), source.get("data")
        if source.get("type") == "base64" and isinstance(media, str) and isinstance(data, str):
            return f"data:{media};base64,{data}"
    raise TranslationError("an image block needs a url or base64 source")


def _tool_result(block: dict[str, Any]) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise TranslationError("a tool_result block needs 'tool_use_id'")
    content = block.get("content")
    text = "" if content is None else _text(content, "tool_result content")
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _assistant(content: Any) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in _blocks(content, "assistant content"):
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append(_tool_call(block))
        elif kind not in ("thinking", "redacted_thinking"):  # reasoning is not replayed
            raise TranslationError(f"unsupported content block {kind!r} for this provider")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise TranslationError("a tool_use block needs 'id' and 'name'")
    arguments = block.get("input", {})
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}


def _tools(body: dict[str, Any]) -> dict[str, Any]:
    tools = []
    for tool in objects(body.get("tools") or [], "tools"):
        name = field(tool, "name", str, "tools.")
        if name is None:
            raise TranslationError("each tool needs a 'name'")
        function: dict[str, Any] = {"name": name, "parameters": field(
            tool, "input_schema", dict, "tools.") or {"type": "object", "properties": {}}}
        if (description := field(tool, "description", str, "tools.")) is not None:
            function["description"] = description
        tools.append({"type": "function", "function": function})
    out: dict[str, Any] = {"tools": tools} if tools else {}
    choice = field(body, "tool_choice", dict)
    if choice is not None and tools:
        out.update(_tool_choice(choice))
    return out


def _tool_choice(choice: dict[str, Any]) -> dict[str, Any]:
    kind = choice.get("type")
    out: dict[str, Any] = {}
    if kind in ("auto", "none"):
        out["tool_choice"] = kind
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise TranslationError("'tool_choice' must be auto, any, none or a named tool")
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out

"""An OpenAI chat completions request rewritten as an Anthropic Messages request.

System and developer messages are hoisted into `system`; tool results become tool_result
blocks in a user turn; consecutive turns of one role are merged, as Anthropic alternates roles.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ext_proc.translators.base import TranslationError
from ext_proc.translators.common import field, objects

DEFAULT_MAX_TOKENS = 4096
_DATA_URL = re.compile(r"^data:(image/[A-Za-z0-9.+-]+);base64,(.*)$", re.DOTALL)


def to_anthropic(body: dict[str, Any], model: str) -> dict[str, Any]:
    if (field(body, "n", int) or 1) != 1:
        raise TranslationError("this model's provider returns one choice: 'n' must be 1")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    messages = objects(body.get("messages"), "messages")
    if not messages:
        raise TranslationError("'messages' must be a non-empty list")
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content"), "system"))
        elif role == "user":
            _append(turns, "user", _user_blocks(message.get("content")))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message)])
        else:
            raise TranslationError(f"unsupported message role {role!r}")
    out: dict[str, Any] = {"model": model, "messages": turns,
                           "max_tokens": _max_tokens(body)}
    if system:
        out["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p"):
        if (value := field(body, name, (int, float))) is not None:
            out[name] = value
    if (stop := _stop(body.get("stop"))) is not None:
        out["stop_sequences"] = stop
    if field(body, "stream", bool):
        out["stream"] = True
    if (user := field(body, "user", str)) is not None:
        out["metadata"] = {"user_id": user}
    out.update(_tools(body))
    return out


def _max_tokens(body: dict[str, Any]) -> int:
    value = field(body, "max_completion_tokens", int)
    if value is None:
        value = field(body, "max_tokens", int)
    if value is None:
        return DEFAULT_MAX_TOKENS
    if value < 1:
        raise TranslationError("'max_tokens' must be at least 1")
    return int(value)


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    parts = objects(content, f"{where} content")
    if not all(p.get("type") == "text" and isinstance(p.get("text"), str) for p in parts):
        raise TranslationError(f"{where} content parts must be text")
    return "".join(p["text"] for p in parts)


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for part in objects(content, "user content"):
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url")))
        else:
            raise TranslationError(f"unsupported content part {kind!r} for this provider")
    return blocks


def _image(image: Any) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str):
        raise TranslationError("'image_url.url' must be a string")
    if match := _DATA_URL.match(url):
        source = {"type": "base64", "media_type": match[1], "data": match[2]}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise TranslationError("'image_url.url' must be an http(s) URL or a base64 data URL")
    return {"type": "image", "source": source}


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    blocks: list[dict[str, Any]] = []
    if content is not None and (text := _assistant_text(content)):
        blocks.append({"type": "text", "text": text})
    for call in objects(message.get("tool_calls") or [], "tool_calls"):
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise TranslationError("each tool call needs 'function.name'")
        blocks.append({"type": "tool_use", "id": field(call, "id", str) or "",
                       "name": function["name"],
                       "input": _arguments(function.get("arguments"))})
    return blocks


def _assistant_text(content: Any) -> str:
    if isinstance(content, list):  # refusal parts carry no text the model should see again
        content = [p for p in objects(content, "assistant content") if p.get("type") == "text"]
    return _text(content, "assistant")


def _arguments(arguments: Any) -> Any:
    if arguments in (None, ""):
        return {}
    if not isinstance(arguments, str):
        raise TranslationError("'function.arguments' must be a JSON string")
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise TranslationError("'function.arguments' is not valid JSON") from None
    if not isinstance(value, dict):
        raise TranslationError("'function.arguments' must encode a JSON object")
    return value


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise TranslationError("a tool message needs 'tool_call_id'")
    return {"type": "tool_result", "tool_use_id": call_id,
            "content": _text(message.get("content") or "", "tool")}


def _stop(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return stop
    raise TranslationError("'stop' must be a string or a list of strings")


def _tools(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tools = []
    for tool in objects(body.get("tools") or [], "tools"):
        function = tool.get("function")
        if tool.get("type") != "function" or not isinstance(function, dict):
            raise TranslationError("only tools of type 'function' are supported")
        name = field(function, "name", str, "function.")
        if name is None:
            raise TranslationError("each tool needs 'function.name'")
        entry: dict[str, Any] = {"name": name, "input_schema": field(
            function, "parameters", dict, "function.") or {"type": "object", "properties": {}}}
        if (description := field(function, "description", str, "function.")) is not None:
            entry["description"] = description
        tools.append(entry)
    if tools:
        out["tools"] = tools
    choice = _tool_choice(body.get("tool_choice"))
    if field(body, "parallel_tool_calls", bool) is False and tools:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None and tools:
        out["tool_choice"] = choice
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    raise TranslationError("'tool_choice' must be auto, none, required or a named function")

"""A Messages request rewritten as a Bedrock Converse request.

Bedrock takes images as bytes only (a URL image is refused), has no "none" tool choice (the
tools are left out instead, unless the conversation already used them, as Converse then
requires the toolConfig), and has no top_k outside model-specific fields (dropped).
"""

from __future__ import annotations

from typing import Any

from ext_proc.translators.base import TranslationError
from ext_proc.translators.common import field, objects
from ext_proc.translators.messages_input import (
    content_blocks,
    image_source,
    sampling_settings,
    system_texts,
)

# top_k has no Converse field outside model-specific ones: dropped.
_INFERENCE_NAMES = {"max_tokens": "maxTokens", "temperature": "temperature", "top_p": "topP",
                    "stop_sequences": "stopSequences"}
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif",
                  "image/webp": "webp"}


def to_converse(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"messages": _messages(body)}
    if (system := body.get("system")) is not None:
        out["system"] = [{"text": text} for text in system_texts(system) if text]
    if inference := sampling_settings(body, _INFERENCE_NAMES):
        out["inferenceConfig"] = inference
    if (tools := _tool_config(body, out["messages"])) is not None:
        out["toolConfig"] = tools
    return out


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    turns = objects(body.get("messages"), "messages")
    if not turns:
        raise TranslationError("'messages' must be a non-empty list")
    out: list[dict[str, Any]] = []
    for turn in turns:
        role = turn.get("role")
        if role not in ("user", "assistant"):
            raise TranslationError(f"unsupported message role {role!r}")
        blocks = [converted for block in content_blocks(turn.get("content"), f"{role} content")
                  if (converted := _block(block)) is not None]
        if out and out[-1]["role"] == role:  # Converse wants the roles to alternate
            out[-1]["content"].extend(blocks)
        elif blocks:
            out.append({"role": role, "content": blocks})
    if not out:
        raise TranslationError("the messages carry no content")
    return out


def _block(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block.get("type")
    if kind == "text" and isinstance(text := block.get("text"), str):
        return {"text": text} if text else None  # Converse refuses blank text blocks
    if kind == "image":
        return _image(block)
    if kind == "tool_use":
        call_id, name = block.get("id"), block.get("name")
        tool_input = block.get("input", {})
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise TranslationError("a tool_use block needs 'id' and 'name'")
        if not isinstance(tool_input, dict):
            raise TranslationError("a tool_use block's 'input' must be an object")
        return {"toolUse": {"toolUseId": call_id, "name": name, "input": tool_input}}
    if kind == "tool_result":
        return _tool_result(block)
    if kind in ("thinking", "redacted_thinking"):
        return None  # reasoning is not replayed
    raise TranslationError(f"unsupported content block {kind!r} for this provider")


def _image(block: dict[str, Any]) -> dict[str, Any]:
    media, data = image_source(block)
    if media not in _IMAGE_FORMATS:
        raise TranslationError(f"unsupported image type {media!r}")
    return {"image": {"format": _IMAGE_FORMATS[media], "source": {"bytes": data}}}


def _tool_result(block: dict[str, Any]) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise TranslationError("a tool_result block needs 'tool_use_id'")
    content = block.get("content")
    parts: list[dict[str, Any]] = []
    for part in [] if content is None else content_blocks(content, "tool_result content"):
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append({"text": part["text"]})
        elif part.get("type") == "image":
            parts.append(_image(part))
        else:
            raise TranslationError("tool_result content must be text or images")
    result: dict[str, Any] = {"toolUseId": call_id, "content": parts or [{"text": ""}]}
    if block.get("is_error") is True:
        result["status"] = "error"
    return {"toolResult": result}


def _tool_config(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    tools = []
    for tool in objects(body.get("tools") or [], "tools"):
        name = field(tool, "name", str, "tools.")
        if name is None:
            raise TranslationError("each tool needs a 'name'")
        spec: dict[str, Any] = {"name": name, "inputSchema": {"json": field(
            tool, "input_schema", dict, "tools.") or {"type": "object", "properties": {}}}}
        if (description := field(tool, "description", str, "tools.")) is not None:
            spec["description"] = description
        tools.append({"toolSpec": spec})
    if not tools:
        return None
    choice = field(body, "tool_choice", dict) or {"type": "auto"}
    kind = choice.get("type")
    if kind == "none":
        used = any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])
        return {"tools": tools} if used else None
    if kind in ("auto", "any"):
        return {"tools": tools, "toolChoice": {kind: {}}}
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"tools": tools, "toolChoice": {"tool": {"name": choice["name"]}}}
    raise TranslationError("'tool_choice' must be auto, any, none or a named tool")

"""A Messages request rewritten as a Gemini generateContent request (Gemini API and Vertex AI).

Gemini answers a function call with the function's name, not the call's id, so tool results
are matched to the name of the tool_use block with their id earlier in the conversation. Tool
schemas go as parametersJsonSchema, which takes JSON Schema as clients write it.
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

_ROLES = {"user": "user", "assistant": "model"}
_GENERATION_NAMES = {"max_tokens": "maxOutputTokens", "temperature": "temperature",
                     "top_p": "topP", "top_k": "topK", "stop_sequences": "stopSequences"}


def to_gemini(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"contents": _contents(body)}
    if (system := body.get("system")) is not None:
        out["systemInstruction"] = {"parts": [{"text": t} for t in system_texts(system) if t]}
    if config := sampling_settings(body, _GENERATION_NAMES):
        out["generationConfig"] = config
    out.update(_tools(body))
    return out


def _contents(body: dict[str, Any]) -> list[dict[str, Any]]:
    turns = objects(body.get("messages"), "messages")
    if not turns:
        raise TranslationError("'messages' must be a non-empty list")
    names: dict[str, str] = {}  # tool_use id -> tool name
    out: list[dict[str, Any]] = []
    for turn in turns:
        role = _ROLES.get(str(turn.get("role")))
        if role is None:
            raise TranslationError(f"unsupported message role {turn.get('role')!r}")
        parts = [part for block in content_blocks(turn.get("content"), f"{role} content")
                 if (part := _part(block, names)) is not None]
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        elif parts:
            out.append({"role": role, "parts": parts})
    if not out:
        raise TranslationError("the messages carry no content")
    return out


def _part(block: dict[str, Any], names: dict[str, str]) -> dict[str, Any] | None:
    kind = block.get("type")
    if kind == "text" and isinstance(text := block.get("text"), str):
        return {"text": text} if text else None
    if kind == "image":
        media, data = image_source(block)
        return {"inlineData": {"mimeType": media, "data": data}}
    if kind == "tool_use":
        call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise TranslationError("a tool_use block needs 'id' and 'name'")
        if not isinstance(arguments, dict):
            raise TranslationError("a tool_use block's 'input' must be an object")
        names[call_id] = name
        return {"functionCall": {"name": name, "args": arguments}}
    if kind == "tool_result":
        return _function_response(block, names)
    if kind in ("thinking", "redacted_thinking"):
        return None
    raise TranslationError(f"unsupported content block {kind!r} for this provider")


def _function_response(block: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or call_id not in names:
        raise TranslationError("a tool_result must answer a tool call earlier in the messages")
    content = block.get("content")
    texts = []
    for part in [] if content is None else content_blocks(content, "tool_result content"):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise TranslationError("tool_result content must be text for this provider")
        texts.append(part["text"])
    key = "error" if block.get("is_error") is True else "content"
    return {"functionResponse": {"name": names[call_id], "response": {key: "".join(texts)}}}


def _tools(body: dict[str, Any]) -> dict[str, Any]:
    declarations = []
    for tool in objects(body.get("tools") or [], "tools"):
        name = field(tool, "name", str, "tools.")
        if name is None:
            raise TranslationError("each tool needs a 'name'")
        declaration: dict[str, Any] = {"name": name}
        if (description := field(tool, "description", str, "tools.")) is not None:
            declaration["description"] = description
        if (schema := field(tool, "input_schema", dict, "tools.")) is not None:
            declaration["parametersJsonSchema"] = schema
        declarations.append(declaration)
    if not declarations:
        return {}
    out: dict[str, Any] = {"tools": [{"functionDeclarations": declarations}]}
    choice = field(body, "tool_choice", dict)
    if choice is None:
        return out
    kind = choice.get("type")
    if kind in ("auto", "any", "none"):
        config: dict[str, Any] = {"mode": str(kind).upper()}
    elif kind == "tool" and isinstance(choice.get("name"), str):
        config = {"mode": "ANY", "allowedFunctionNames": [choice["name"]]}
    else:
        raise TranslationError("'tool_choice' must be auto, any, none or a named tool")
    out["toolConfig"] = {"functionCallingConfig": config}
    return out

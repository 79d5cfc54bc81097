-- What the lane's translations share: reading values of json_text.lua, and the message of a
-- provider's error. TRANSLATIONS holds each translation by name.

TRANSLATIONS = {}

local function present(value)
  return value ~= nil and value ~= JSON_NULL
end

local function string_or(value, default)
  return type(value) == "string" and value or default
end

local function is_array(value)
  return type(value) == "table" and value.array ~= nil
end

local function object_of(value)
  return type(value) == "table" and value.object or nil
end

local function integer_text(value)
  -- Beyond 15 digits a double would not hold it: the worker decides.
  if type(value) == "table" and value.integer and #value.number <= 15 then
    return value.number
  end
  return nil
end

-- A role or part type as written; ESCAPED_NAME for one spelled with an escape, which only a
-- decoder can compare.
local ESCAPED_NAME = {}
local function name_of(value)
  if type(value) ~= "string" then
    return nil
  end
  return value:find("\\", 1, true) and ESCAPED_NAME or value
end

local function count(usage, name)
  local text = integer_text(usage[name])
  return text and tonumber(text) or 0
end

-- An error body in either schema: its message as a JSON string (Anthropic, OpenAI and
-- Google nest it in "error"; Bedrock puts it at the top), else the body itself.
local function error_message(text)
  local parsed = json_read(text)
  if parsed == nil then
    local stripped = text:match("^%s*(.-)%s*$")
    return json_quoted(stripped ~= "" and stripped or "the provider returned an error")
  end
  if is_array(parsed) and #parsed.array == 1 then
    parsed = parsed.array[1]  -- Vertex wraps its error in a list
  end
  local holder = object_of(parsed) or {}
  local nested = holder.error
  if object_of(nested) then
    holder = nested.object
  end
  local message = holder.message
  if message == nil then
    message = holder.Message
  end
  if type(message) == "string" then
    return '"' .. message .. '"'
  end
  return json_quoted(json_source(text, parsed))
end

-- The workers' error kind of a status: {OpenAI type, OpenAI code, Anthropic type}.
local function error_kind(status)
  return TRANSLATION.error_kinds[tostring(status)]
    or TRANSLATION.error_kinds[status >= 500 and "500" or "400"]
end

-- A tool call's arguments, a JSON string that must encode an object, as compact JSON; nil
-- when they do not.
local function arguments_object(arguments)
  local text = type(arguments) == "string" and json_unescaped(arguments)
  local value = text and json_read(text)
  return object_of(value) and json_source(text, value) or nil
end

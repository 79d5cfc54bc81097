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

-- `,"temperature":..,"top_p":..` as the client wrote them ("" without); nil if one is not a
-- number. Both APIs name them alike.
local function sampling(fields)
  local out = ""
  for _, name in ipairs({"temperature", "top_p"}) do
    local value = fields[name]
    if present(value) then
      if type(value) ~= "table" or value.number == nil then
        return nil
      end
      out = out .. ',"' .. name .. '":' .. value.number
    end
  end
  return out
end

-- An array of strings as JSON; nil for anything else.
local function string_list(value)
  if not is_array(value) then
    return nil
  end
  local quoted = {}
  for i, item in ipairs(value.array) do
    if type(item) ~= "string" then
      return nil
    end
    quoted[i] = '"' .. item .. '"'
  end
  return "[" .. table.concat(quoted, ",") .. "]"
end

-- A tool's JSON schema; none, or an empty object, asks for the default, as with the workers.
local function schema_or_default(text, schema)
  if present(schema) and next(schema.object) ~= nil then
    return json_source(text, schema)
  end
  return '{"type":"object","properties":{}}'
end

-- The model a reply names, as JSON: the provider's, else the one the request went to.
local function reply_model(named, model)
  return (type(named) == "string" and named ~= "") and '"' .. named .. '"' or json_quoted(model)
end

-- The usage fields Envoy's own reply parse reads (REPLY_USAGE_FIELDS, "a.b" for a nested
-- one) that a reply's usage object holds as integers: {["a.b"] = n}. A translated reply
-- reports them itself, having read the reply anyway.
local USAGE_PATHS = {}
for _, name in ipairs(TRANSLATION.usage_fields) do
  local path = {}
  for key in name:gmatch("[^.]+") do
    path[#path + 1] = key
  end
  USAGE_PATHS[name] = path
end

local function usage_fields(usage)
  local found = {}
  for name, path in pairs(USAGE_PATHS) do
    local value = usage
    for _, key in ipairs(path) do
      value = object_of(value) and value.object[key]
    end
    local text = integer_text(value)
    if text ~= nil then
      found[name] = tonumber(text)
    end
  end
  return found
end

-- Usage fields ({name = number}) as one JSON object, the reply's usage metadata value.
local function usage_json(fields)
  local members = {}
  for name, value in pairs(fields) do
    members[#members + 1] = string.format('"%s":%.17g', name, value)
  end
  return "{" .. table.concat(members, ",") .. "}"
end

-- A function that reports usage fields ({name = number}) in the reply's usage metadata, which
-- the access log carries to the workers; a field reported again takes its last value.
local function usage_reporter(handle)
  local reported = {}
  return function(fields)
    for name, value in pairs(fields) do
      reported[name] = value
    end
    -- Taken anew: waiting for the body ends the scope of one taken before.
    handle:streamInfo():dynamicMetadata():set(TRANSLATION.names.namespace,
                                               TRANSLATION.names.reply_usage,
                                               usage_json(reported))
  end
end

-- A translation's entry in TRANSLATIONS. `request(text, route)` translates a request whose
-- body the lane's reader has checked whole (request_fields.lua; nil: left to a worker); a
-- whole reply's error becomes `error_body(status, message)`, a success
-- `success_body(text, model)`, which returns the reply and its usage fields;
-- `stream(model, include_usage, report)` makes a stream's translator; `failure()` is what the
-- client gets should this code fail on a reply.
local function translation(request, error_body, success_body, stream)
  return {
    request = request, stream = stream,
    reply = function(status, text, model)
      if status < 200 or status >= 300 then
        return error_body(status, error_message(text))
      end
      return success_body(text, model)
    end,
    failure = function()
      return error_body(502, '"the gateway could not translate the provider\'s answer"')
    end}
end

-- Server-sent events end their lines with CR, LF or CRLF; the readers below look for LF
-- alone. `lf_lines(stream, chunk)` is the chunk of `stream` with each CR and CRLF written as
-- LF. A CRLF may be split between two chunks: `stream.after_cr` says the last one ended with
-- a CR, already read as a line's end, whose LF, opening this chunk, is dropped.
local function lf_lines(stream, chunk)
  local first = byte(chunk, 1)
  if first == nil then
    return chunk
  elseif first == 10 and stream.after_cr then
    chunk = chunk:sub(2)
  end
  stream.after_cr = byte(chunk, #chunk) == 13
  if not chunk:find("\r", 1, true) then  -- providers end lines with LF
    return chunk
  end
  return (chunk:gsub("\r\n?", "\n"))
end

-- What a stream read chunk by chunk holds of its unfinished end (`held`, LF line ends
-- already), then `chunk` with LF line ends: the text its readers look at next.
local function held_then(stream, chunk)
  chunk = lf_lines(stream, chunk)
  local held = stream.held
  return held == "" and chunk or held .. chunk
end

-- Server-sent events fed in chunks split at any byte: the methods of a stream object
-- holding `held`, `event` and `data` (initially "", "" and nil: no data line yet) whose
-- `dispatch(name, data, out)` appends what one event becomes to `out`. `feed(chunk)`
-- returns what the events `chunk` completes became; the unfinished rest waits for the next
-- chunk. Lines are read where they lie in the text: only the values kept are copied out.
local EventReader = {}

-- The value of the line text[first..last] when it is the field `name` (a name alone is that
-- field, empty), else nil; one space after the colon is not part of the value.
local function field_value(text, first, last, name)
  local after = first + #name
  if text:sub(first, after - 1) ~= name then
    return nil
  elseif after > last then
    return ""
  elseif byte(text, after) ~= 58 then
    return nil  -- a longer name
  end
  if byte(text, after + 1) == 32 then  -- within the line: its end is not a space
    after = after + 1
  end
  return text:sub(after + 1, last)
end

-- The line text[first..last]: a field of the event being read, or (empty) the event's end.
-- Comments and other fields are left out.
function EventReader.line(self, text, first, last, out)
  if first > last then
    local data = self.data
    if data ~= nil or self.event ~= "" then
      if type(data) == "table" then
        data = table.concat(data, "\n")
      end
      self:dispatch(self.event ~= "" and self.event or "message", data or "", out)
    end
    self.event, self.data = "", nil
    return
  end
  local lead = byte(text, first)
  if lead == 100 then
    local value = field_value(text, first, last, "data")
    local data = self.data
    if value == nil then
      return
    elseif data == nil then
      self.data = value
    elseif type(data) == "table" then
      data[#data + 1] = value
    else
      self.data = {data, value}  -- several lines of data, joined by newlines
    end
  elseif lead == 101 then
    self.event = field_value(text, first, last, "event") or self.event
  end
end

function EventReader.feed(self, chunk)
  local text, out, from = held_then(self, chunk), {}, 1
  while true do
    local newline = text:find("\n", from, true)
    if newline == nil then
      break
    end
    self:line(text, from, newline - 1, out)
    from = newline + 1
  end
  self.held = text:sub(from)
  return table.concat(out)
end

-- A class of streams read as server-sent events: `class.new(state)` makes one of `state`,
-- which holds what the class's own methods keep.
local function event_stream_class()
  local class = {line = EventReader.line, feed = EventReader.feed}
  class.__index = class
  function class.new(state)
    state.held, state.event = "", ""
    return setmetatable(state, class)
  end
  return class
end

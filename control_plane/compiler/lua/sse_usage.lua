-- The usage a stream of server-sent events reports, found without splitting the stream into
-- its events: only an event holding a usage object ("usage": {...}) is read, and a stream
-- has one or two (the other events of an OpenAI stream that asked for its usage hold
-- "usage": null). OpenAI reports it in a chunk of its own before [DONE]; Anthropic in
-- message_start (the input; its output count is a placeholder) and message_delta (the final
-- counts). The last event to name a field wins.
--
-- A chunk may end anywhere: the end of the last whole event in it is found from the chunk's
-- end, and what follows waits for the next chunk. Events end with a blank line; lines are
-- read with LF line ends (lf_lines: a stream that ends them otherwise is rewritten so).

-- An unfinished event longer than this is given up on rather than held without bound.
local MAX_HELD = 1024 * 1024
local USAGE_KEY = '"usage"'

local NOT_FINAL = {}
for _, name in ipairs(TRANSLATION.final_usage_fields) do
  NOT_FINAL[name] = true
end

-- Whether the LF at `at` ends a blank line.
local function ends_blank_line(text, at, floor)
  return at > floor and byte(text, at - 1) == 10
end

-- The length of text up to the end of its last whole event (0: none), given that its first
-- `held` bytes hold no event's end.
local function whole_length(text, held)
  for at = #text, held + 1, -1 do
    if byte(text, at) == 10 and ends_blank_line(text, at, 1) then
      return at
    end
  end
  return 0
end

-- Where the event holding `at` starts, looking back no further than `floor`.
local function event_start(text, at, floor)
  for before = at - 1, floor + 1, -1 do
    if byte(text, before) == 10 and ends_blank_line(text, before, floor) then
      return before + 1
    end
  end
  return floor
end

-- Where the event holding `at` ends: the LF of its blank line.
local function event_end(text, at)
  local blank = text:find("\n\n", at, true)
  return blank and blank + 1
end

-- The JSON an event's data lines hold, or nil.
local function event_json(text, first, last)
  local data, at = {}, first
  while at <= last do
    local newline = text:find("\n", at, true) or last + 1
    if text:sub(at, at + 4) == "data:" then
      local from = byte(text, at + 5) == 32 and at + 6 or at + 5
      data[#data + 1] = text:sub(from, newline - 1)
    end
    at = newline + 1
  end
  return #data > 0 and json_read(table.concat(data, "\n")) or nil
end

local function object_follows(text, after_key)
  local at = skip_space(text, after_key)
  if at == nil or byte(text, at) ~= 58 then
    return false
  end
  at = skip_space(text, at + 1)
  return at ~= nil and byte(text, at) == 123
end

-- The usage fields an event's JSON reports (nil: none).
local function reported(event)
  local fields = object_of(event)
  if fields == nil then
    return nil
  end
  local found = object_of(fields.usage) and usage_fields(fields.usage) or {}
  local message = object_of(fields.message)
  if message ~= nil and object_of(message.usage) then
    for name, value in pairs(usage_fields(message.usage)) do
      if not NOT_FINAL[name] then
        found[name] = value
      end
    end
  end
  return next(found) ~= nil and found or nil
end

-- Whether the value ending just before `after` is the last of the top-level object: what
-- follows it is key-value pairs, then the object's close, then nothing. An object nested in
-- the reply would be closed first, its parent after.
local function closes_top_level(text, after)
  local at = skip_space(text, after)
  while at ~= nil and byte(text, at) == 44 do
    at = skip_space(text, at + 1)
    local key_end = at and byte(text, at) == 34 and string_end(text, at)
    at = key_end and skip_space(text, key_end + 1)
    if at == nil or byte(text, at) ~= 58 then
      return false
    end
    at = skip_space(text, at + 1)
    local value = at and value_end(text, at)
    at = value and skip_space(text, value)
  end
  return at ~= nil and byte(text, at) == 125 and skip_space(text, at + 1) == nil
end

-- The usage fields a whole JSON reply reports (nil: none): its top-level "usage" object,
-- looked for from the end, where providers put it, among the keys named "usage" (a plain
-- search: a quote inside a string is escaped, and one found escaped is passed over), and
-- that object alone read. Nothing before the object is read; a reply that is not JSON is
-- the worker's to estimate either way.
local function whole_reply_usage(text)
  local keys, from = {}, 1
  while true do
    local key = text:find(USAGE_KEY, from, true)
    if key == nil then
      break
    end
    if not is_escaped(text, key) then
      keys[#keys + 1] = key
    end
    from = key + #USAGE_KEY
  end
  for index = #keys, 1, -1 do
    local colon = skip_space(text, keys[index] + #USAGE_KEY)
    local open = colon and byte(text, colon) == 58 and skip_space(text, colon + 1)
    if open and byte(text, open) == 123 then
      local after = value_end(text, open)
      if after and closes_top_level(text, after) then
        local found = usage_fields(json_read(text:sub(open, after - 1)))
        return next(found) ~= nil and found or nil
      end
    end
  end
  return nil
end

-- For each event of text[1, length] holding a usage object: report(fields) with the usage
-- fields it reports, if any, then visit(first, last, event) if given, `event` its JSON (nil
-- if it is not JSON).
local function each_usage_event(text, length, report, visit)
  local from, floor = 1, 1
  while true do
    local key = text:find(USAGE_KEY, from, true)
    if key == nil or key > length then
      return
    end
    if object_follows(text, key + #USAGE_KEY) then
      local first, last = event_start(text, key, floor), event_end(text, key)
      local event = event_json(text, first, last)
      local fields = reported(event)
      if fields ~= nil then
        report(fields)
      end
      if visit ~= nil then
        visit(first, last, event)
      end
      from, floor = last + 1, last + 1
    else
      from = key + #USAGE_KEY
    end
  end
end

-- A class of stream objects fed a stream's chunks in order, each holding what a chunk
-- leaves of an unfinished event (`held`) until the next chunk.
local function held_events_class()
  local class = {}
  class.__index = class
  function class.new()
    return setmetatable({held = ""}, class)
  end
  -- `chunk` after what was held, with LF line ends, and the length of the whole events in it.
  function class.whole(self, chunk)
    local text = held_then(self, chunk)
    return text, whole_length(text, #self.held)
  end
  return class
end

-- `read(chunk, report)` calls report(fields) for each usage event the chunk completes.
local UsageReader = held_events_class()

function UsageReader.read(self, chunk, report)
  local text, length = self:whole(chunk)
  each_usage_event(text, length, report)
  self.held = #text - length <= MAX_HELD and text:sub(length + 1) or ""
end

-- An OpenAI stream whose usage the client did not ask for: `strip(chunk, report)` reads the
-- usage as `read` does and returns what of the chunk and the unfinished event before it goes
-- on, with LF line ends (nil: the chunk as it is), without the usage event, which OpenAI
-- sends with its "choices" empty (an event with choices goes on). An empty chunk is the
-- stream's end (Envoy hands Lua one after the last): an event the stream left unfinished
-- goes on as it is.
local UsageStripper = held_events_class()

local function usage_only(event)
  local fields = object_of(event)
  local choices = fields and fields.choices
  return fields ~= nil and (choices == nil or is_array(choices) and #choices.array == 0)
end

function UsageStripper.strip(self, chunk, report)
  local held = self.held
  if chunk == "" then
    self.held = ""
    return held ~= "" and held or nil
  end
  local text, length = self:whole(chunk)
  local kept, from = {}, 1
  each_usage_event(text, length, report, function(first, last, event)
    if usage_only(event) then
      kept[#kept + 1] = text:sub(from, first - 1)
      from = last + 1
    end
  end)
  if from == 1 and length == #text and text == chunk then
    return nil
  end
  kept[#kept + 1] = text:sub(from, length)
  self.held = text:sub(length + 1)
  if #self.held > MAX_HELD then  -- a runaway event goes on as it is
    kept[#kept + 1], self.held = self.held, ""
  end
  return table.concat(kept)
end

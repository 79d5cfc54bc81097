-- Runs only on an OpenAI stream whose usage the lane asked for on the client's behalf
-- (stream_options.include_usage): the event that carries it, which the client did not ask
-- for, leaves the reply. OpenAI sends it last before [DONE], with its "choices" empty; an
-- event with choices, or without a usage object, goes on untouched. sse_to_metadata, earlier
-- on the reply's way, has read the usage by then.

-- An event ends with a blank line. A chunk's unfinished event waits for the next chunk; a
-- stream that ends inside one loses nothing a client would see (SSE drops it too).
local EVENT_END = "\r?\n\r?\n()"
-- A runaway event is let through as it arrives rather than held without bound.
local MAX_HELD = 1024 * 1024

-- A usage object: the other events of such a stream carry "usage": null.
local USAGE_OBJECT = '"usage"%s*:%s*{'

local function usage_only(event)
  return event:find(USAGE_OBJECT) ~= nil
    and (event:find('"choices"%s*:%s*%[%s*%]') ~= nil or event:find('"choices"') == nil)
end

local LAST_EVENT_END = ".*" .. EVENT_END

-- The complete events of `text` without the usage event, and the unfinished rest.
local function split(text)
  if not text:find(USAGE_OBJECT) then  -- every event but the last: one pass, no split
    local stop = text:match(LAST_EVENT_END)
    if stop == nil then
      return "", text
    end
    return text:sub(1, stop - 1), text:sub(stop)
  end
  local kept, from = {}, 1
  while true do
    local stop = text:match(EVENT_END, from)
    if stop == nil then
      break
    end
    local event = text:sub(from, stop - 1)
    if not usage_only(event) then
      kept[#kept + 1] = event
    end
    from = stop
  end
  return table.concat(kept), text:sub(from)
end

function envoy_on_response(handle)
  local status = handle:headers():get(":status")
  local content_type = handle:headers():get("content-type") or ""
  if status ~= "200" or not content_type:find("text/event-stream", 1, true) then
    return
  end
  -- The reply gets shorter: a length the provider declared no longer holds (a stream
  -- without one goes chunked, as streams usually do).
  handle:headers():remove("content-length")
  local held = ""
  for chunk in handle:bodyChunks() do
    local complete
    complete, held = split(held .. chunk:getBytes(0, chunk:length()))
    if #held > MAX_HELD then
      complete, held = complete .. held, ""
    end
    chunk:setBytes(complete)
  end
end

-- The request body's fields that route and admit a request, read in Envoy before anything
-- else looks at the body (the compiler prepends `REQUEST`, its names, and json_text.lua). The
-- whole body is checked as JSON, as the workers' parser checks it, while only the top-level
-- values below are kept; the routes match the model through a header, and refuse a body
-- that is not JSON or names no model (`body_error`). Keys are compared decoded, and the last
-- of a repeated key wins, as with the workers' parser.

local byte = string.byte
local R = REQUEST
local MAX_NESTING = 1024  -- the workers' parser refuses deeper JSON

-- A string value's text, decoded, and whether it was written with an escape.
local function decoded(text, first, last)
  local raw = text:sub(first, last)
  if raw:find("\\", 1, true) then
    return json_unescaped(raw), true
  end
  return raw, false
end

-- A member's value when it is true or false, else nil.
local function boolean(text, first)
  local code = byte(text, first)
  if code == 116 then
    return true
  elseif code == 102 then
    return false
  end
  return nil
end

-- stream_options.include_usage when it is true or false (the object is checked already).
local USAGE_OPTION = key_set({"include_usage"})

local function include_usage(text, open)
  local at = members_at(text, open, USAGE_OPTION).include_usage
  return at and boolean(text, at)
end

-- Keeps the top-level member whose value spans text[first..after - 1].
local function keep(fields, key, text, first, after)
  local code = byte(text, first)
  if key == "model" then
    fields.models = fields.models + 1
    fields.model, fields.model_first, fields.model_last, fields.model_escaped = nil
    if code == 34 and after - first > 2 then
      local model, escaped = decoded(text, first + 1, after - 2)
      if #model <= R.max_model_bytes then
        fields.model, fields.model_escaped = model, escaped
        fields.model_first, fields.model_last = first + 1, after - 2
      end
    end
  elseif key == "stream" then
    fields.stream = boolean(text, first)
  elseif key == "max_tokens" or key == "max_completion_tokens" then
    fields[key] = (code == 45 or code >= 48 and code <= 57)
      and tonumber(text:sub(first, after - 1)) or nil
  elseif key == "stream_options" then
    fields.has_options = true
    fields.include_usage = nil
    if code == 123 then
      fields.include_usage = include_usage(text, first)
    end
  end
end

-- The fields of a request body (`open`: where its object opens; `plain_keys`: no key was
-- written with an escape; `models`: how many times it names "model"), or nil and the
-- body_error: "invalid_json", or "missing_model" for JSON that names no model as a string
-- (of at most `max_model_bytes`).
function request_fields(text)
  local open = skip_space(text, 1)
  if open == nil or byte(text, open) ~= 123 then
    local after = open and valid_end(text, open, MAX_NESTING)
    return nil, after and skip_space(text, after) == nil and "missing_model" or "invalid_json"
  end
  local fields = {open = open, plain_keys = true, models = 0}
  local at = skip_space(text, open + 1)
  if at ~= nil and byte(text, at) == 125 then
    at = at + 1
  else
    while true do
      local first, close, escaped
      if at ~= nil then
        first, close, escaped = member_value(text, at)
      end
      local after = first and valid_end(text, first, MAX_NESTING - 1)  -- inside the body
      if after == nil then
        return nil, "invalid_json"
      end
      local key = escaped and json_unescaped(text:sub(at + 1, close - 1))
        or text:sub(at + 1, close - 1)
      fields.plain_keys = fields.plain_keys and not escaped
      keep(fields, key, text, first, after)
      at = skip_space(text, after)
      local code = at and byte(text, at)
      if code == 125 then
        at = at + 1
        break
      elseif code ~= 44 then
        return nil, "invalid_json"
      end
      at = skip_space(text, at + 1)
    end
  end
  if skip_space(text, at) ~= nil then
    return nil, "invalid_json"  -- text after the object
  end
  if fields.model == nil then
    return nil, "missing_model"
  end
  return fields
end

-- Reads the request's body into the metadata the routes, the workers and the access logs
-- read, and the model into the header the routes match; the route is found again. Returns
-- the body's text and fields (nil when there is no body or it was refused).
function read_request(handle)
  local body = handle:body()
  local info = handle:streamInfo():dynamicMetadata()
  local text, fields, refused
  if body == nil or body:length() == 0 then
    refused = "missing_model"
  else
    text = body:getBytes(0, body:length())
    info:set(R.namespace, R.body_size, tostring(#text))
    fields, refused = request_fields(text)
  end
  if refused ~= nil then
    info:set(R.namespace, R.body_error, refused)
  else
    info:set(R.namespace, R.model, fields.model)
    for field, key in pairs(R.kept) do
      if fields[field] ~= nil then
        info:set(R.namespace, key, fields[field])
      end
    end
    -- No header value may hold a control character; no policy model has one either.
    if not fields.model:find("[%z\1-\31\127]") then
      handle:headers():replace(R.route_model_header, fields.model)
    end
  end
  handle:clearRouteCache()
  -- The route found now, with the client's path: the lane rewrites the path and authority
  -- for the provider next, and reading the route's metadata is what makes Envoy find it.
  handle:metadata()
  return text, fields
end

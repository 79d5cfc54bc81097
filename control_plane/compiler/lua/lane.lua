-- Admission in Envoy (gateway.admission: envoy). The compiler prepends `LANE`, the policy's
-- tables, `sha256_hex`, the JSON reader, the translations and the reader of the request's
-- fields (request_fields.lua), which this filter runs first. A request this lane admits is
-- forwarded alone with no worker call (renamed, or translated for its provider's API when
-- the translation knows all of it), or, when only a worker can process its attempts (a
-- translation beyond this code, fallbacks), goes to them with no admission call; any other
-- request is left untouched, for the worker to admit exactly. So this code never refuses
-- anything: whatever it is unsure of, the worker decides.

local NAMES = LANE.names

-- The provider credentials, read once per Envoy worker thread when the configuration
-- loads, from the same references the workers resolve. A provider whose credential cannot
-- be read here has no route in this lane.
local function read_credential(ref)
  if ref.env then
    return os.getenv(ref.env)
  end
  local file = io.open(ref.file, "rb")
  if file == nil then
    return nil
  end
  local value = file:read("*a")
  file:close()
  return value
end

local credentials = {}
for provider, ref in pairs(LANE.credentials) do
  local value = read_credential(ref)
  value = value and value:match("^%s*(.-)%s*$")
  if value ~= nil and value ~= "" then
    credentials[provider] = {ref.header, ref.prefix .. value}
  end
end

local function is_space(code)
  return code == 32 or code ~= nil and code >= 9 and code <= 13
end

-- text[first..] without the white space around it. Byte loops, not patterns: LuaJIT
-- compiles them (read by patterns, a key took ~8,500 instructions in LuaJIT alone).
local function trimmed(text, first)
  local last = #text
  while first <= last and is_space(byte(text, first)) do
    first = first + 1
  end
  while last >= first and is_space(byte(text, last)) do
    last = last - 1
  end
  return text:sub(first, last)
end

-- As the workers read it: Authorization: Bearer <key>, else x-api-key.
local function presented_key(headers)
  local authorization = headers:get("authorization")
  if authorization ~= nil then
    local space = authorization:find(" ", 1, true)
    if space == 7 and authorization:sub(1, 6):lower() == "bearer" then
      local token = trimmed(authorization, space + 1)
      if token ~= "" then
        return token
      end
    end
  end
  local key = headers:get("x-api-key")
  return key and trimmed(key, 1)
end

-- The budgets close to their limit: a request counting against one goes to the worker. It
-- counts against a provider's budget if any of its model's targets is that provider's.
local function watched(team, key_id, model)
  for _, budget in ipairs(LANE.watched) do
    if (budget.team == "" or budget.team == team) and (budget.key == "" or budget.key == key_id)
        and (budget.model == "" or budget.model == model) then
      if budget.provider == "" then
        return true
      end
      for _, provider in ipairs(LANE.providers[model]) do
        if provider == budget.provider then
          return true
        end
      end
    end
  end
  return false
end

-- The digest of each key presented on this thread that the policy knows: a caller's key is
-- hashed once, not on every request (~13,000 instructions in Lua). Only keys the policy knows
-- are kept, so the policy bounds it; any other key is hashed each time it comes.
local known_digests = {}

-- The caller (team, key id), or nil when the worker must decide.
local function caller(headers, model)
  if not LANE.takes_keys then
    return "", ""
  end
  local key = presented_key(headers)
  if key == nil or key == "" then
    return nil
  end
  local digest = known_digests[key]
  if digest == nil then
    digest = sha256_hex(key)
  end
  local team_name = LANE.keys[digest]
  if team_name == nil then
    return nil
  end
  known_digests[key] = digest
  local team = LANE.teams[team_name]
  if team.rate_limited or (team.models and not team.models[model]) then
    return nil
  end
  return team_name, NAMES.key_hash_prefix .. digest
end

-- The body's two possible changes: a model the provider names otherwise is renamed, and an
-- OpenAI stream that did not ask for its usage asks for it; every other byte stays as the
-- client sent it, at the places request_fields found. False when the worker must change it:
-- the body names "model" more than once or spells a key with an escape (a provider could read
-- another model than this code), writes the model with an escape, or has stream options that
-- did not ask for the usage (the worker merges into them).
local USAGE_OPTION = '"stream_options":{"include_usage":true},'

local function edit_body(handle, text, fields, route, add_usage)
  if fields.models ~= 1 or not fields.plain_keys or fields.model_escaped
      or (add_usage and fields.has_options) then
    return false
  end
  if fields.model ~= route.model then
    text = text:sub(1, fields.model_first - 2) .. route.model_json
      .. text:sub(fields.model_last + 2)
  end
  if add_usage then
    text = text:sub(1, fields.open) .. USAGE_OPTION .. text:sub(fields.open + 1)
  end
  handle:body():setBytes(text)  -- Envoy sets the content-length to the new size
  return true
end

-- The body in the provider's schema (openai_anthropic.lua); false when this code does not
-- translate it, for the worker's attempts to translate or refuse it.
local function translate_body(handle, text, route)
  -- A failure of the translation itself (a defect) leaves the request to the worker too.
  local ok, translated = pcall(TRANSLATIONS[route.translation].request, text, route)
  if not ok or translated == nil then
    return false
  end
  handle:body():setBytes(translated)
  return true
end

-- Forwards the request alone to its model's one provider, after the body's edits or its
-- translation; false when the body cannot be changed exactly here, for the worker's
-- attempts to change it.
local function forward_alone(handle, text, fields, route, add_usage, team, key_id)
  if route.translation ~= nil then
    if not translate_body(handle, text, route) then
      return false
    end
  elseif fields.model ~= route.model or add_usage then
    if not edit_body(handle, text, fields, route, add_usage) then
      return false
    end
  end
  local headers = handle:headers()  -- waiting for the body ends the scope of one taken before
  for _, name in ipairs(LANE.dropped_headers) do
    headers:remove(name)
  end
  headers:replace(":path", route.path)
  headers:replace(":authority", route.authority)
  for name, value in pairs(route.headers) do
    headers:replace(name, value)
  end
  local credential = credentials[route.provider]
  if credential ~= nil then
    headers:replace(credential[1], credential[2])
  end
  headers:replace(NAMES.direct_header, "1")
  if add_usage then
    headers:replace(NAMES.usage_added_header, "1")
  end
  if route.translation ~= nil then
    headers:replace(NAMES.translated_header, "1")  -- for translated_reply.lua
  end
  -- A translated reply's usage is read in the provider's schema (reply_api).
  handle:streamInfo():dynamicMetadata():set(NAMES.namespace, NAMES.direct, {
    provider = route.provider, model = route.model, team = team, key_id = key_id,
    translation = route.translation, reply_api = route.reply_api})
  return true
end

-- Admitted here, processed by the worker's attempts: they read the caller from the headers,
-- as after the worker's admission.
local function admit_for_attempts(handle, team, key_id)
  local headers = handle:headers()
  if team ~= "" then
    headers:replace(NAMES.team_header, team)
    headers:replace(NAMES.key_id_header, key_id)
  end
  headers:replace(NAMES.admitted_header, "1")
end

function envoy_on_request(handle)
  local text, fields = read_request(handle)
  if fields == nil then
    return  -- no body, or the route refuses it
  end
  local model = fields.model
  if LANE.providers[model] == nil then
    return
  end
  local headers = handle:headers()
  local api_model = headers:get(":path"):match("^[^?]*") .. " " .. model  -- the client's path
  local route = LANE.routes[api_model]
  if route == nil and LANE.forwards and not LANE.attempts[api_model] then
    return  -- the worker's admission may forward it alone
  end
  if route ~= nil and credentials[route.provider] == nil
      and LANE.credentials[route.provider] ~= nil then
    return  -- Envoy could not read the key: the worker's admission may forward it
  end
  local team, key_id = caller(headers, model)
  if team == nil or watched(team, key_id, model) then
    return
  end
  -- Admitted, one way or the other below: counted from the access log.
  handle:streamInfo():dynamicMetadata():set(NAMES.namespace, NAMES.lane_admitted, team)
  -- A large body is translated by a worker: in Lua it would hold one of Envoy's threads, and
  -- every request on it, for milliseconds (~3.5 ns a byte).
  if route ~= nil and (route.translation == nil or #text <= LANE.max_translated_bytes) then
    local add_usage = fields.stream == true
      and not (route.streams or fields.include_usage == true)
    if (route.adds_usage or not add_usage)
        and forward_alone(handle, text, fields, route, add_usage, team, key_id) then
      return
    end
  end
  admit_for_attempts(handle, team, key_id)
end

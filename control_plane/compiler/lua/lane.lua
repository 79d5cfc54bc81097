-- Admission in Envoy (gateway.admission: envoy). The compiler prepends `LANE`, the policy's
-- tables, and `sha256_hex`. A request this lane admits is forwarded alone with no worker
-- call; any other request is left untouched, for the worker to admit exactly. So this code
-- never refuses anything: whatever it is unsure of, the worker decides.

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

-- As the workers read it: Authorization: Bearer <key>, else x-api-key.
local function presented_key(headers)
  local authorization = headers:get("authorization")
  if authorization ~= nil then
    local scheme, token = authorization:match("^([^ ]*) (.*)$")
    token = token and token:match("^%s*(.-)%s*$")
    if scheme ~= nil and scheme:lower() == "bearer" and token ~= "" then
      return token
    end
  end
  local key = headers:get("x-api-key")
  return key and key:match("^%s*(.-)%s*$")
end

-- The budgets close to their limit: a request counting against one goes to the worker.
local function watched(team, key_id, model, provider)
  for _, budget in ipairs(LANE.watched) do
    if (budget.team == "" or budget.team == team) and (budget.key == "" or budget.key == key_id)
        and (budget.model == "" or budget.model == model)
        and (budget.provider == "" or budget.provider == provider) then
      return true
    end
  end
  return false
end

-- The caller (team, key id), or nil when the worker must decide.
local function caller(headers, model)
  if not LANE.takes_keys then
    return "", ""
  end
  local key = presented_key(headers)
  if key == nil or key == "" then
    return nil
  end
  local digest = sha256_hex(key)
  local team_name = LANE.keys[digest]
  if team_name == nil then
    return nil
  end
  local team = LANE.teams[team_name]
  if team.rate_limited or (team.models and not team.models[model]) then
    return nil
  end
  return team_name, NAMES.key_hash_prefix .. digest
end

function envoy_on_request(handle)
  local metadata = handle:streamInfo():dynamicMetadata():get(NAMES.namespace)
  if metadata == nil then
    return
  end
  local model, client_path = metadata[NAMES.model], metadata[NAMES.client_path]
  if model == nil or client_path == nil or metadata[NAMES.body_size] == nil then
    return
  end
  local route = LANE.routes[client_path:match("^[^?]*") .. " " .. model]
  if route == nil then
    return
  end
  if metadata[NAMES.stream] == true
      and not (route.streams or metadata[NAMES.include_usage] == true) then
    return
  end
  local credential = credentials[route.provider]
  if credential == nil and LANE.credentials[route.provider] ~= nil then
    return
  end
  local headers = handle:headers()
  local team, key_id = caller(headers, model)
  if team == nil or watched(team, key_id, model, route.provider) then
    return
  end
  for _, name in ipairs(LANE.dropped_headers) do
    headers:remove(name)
  end
  headers:replace(":path", route.path)
  headers:replace(":authority", route.authority)
  for name, value in pairs(route.headers) do
    headers:replace(name, value)
  end
  if credential ~= nil then
    headers:replace(credential[1], credential[2])
  end
  headers:replace(NAMES.direct_header, "1")
  handle:streamInfo():dynamicMetadata():set(NAMES.namespace, NAMES.direct, {
    provider = route.provider, model = route.model, team = team, key_id = key_id})
end

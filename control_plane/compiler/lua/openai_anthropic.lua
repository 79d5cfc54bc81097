-- OpenAI chat completions served by Anthropic's Messages API, translated in Envoy for the
-- requests whose every field this code knows: text and image turns, tools, tool calls and
-- their results, the sampling parameters, stop sequences and the user, whole or streamed.
-- The same mapping as ext_proc/translators/openai_anthropic.py, openai_anthropic_request.py
-- and openai_anthropic_stream.py, held to the same outputs by
-- tests/integration/test_lua_openai_anthropic.py. Anything else (a field of the wrong type, a
-- role or content part it does not know) is not translated here: `request` returns nil, and
-- a worker's attempt translates or refuses the request exactly. `TRANSLATION` (the
-- compiler's) holds the workers' constants.

-- The text of content given as a string or as parts; nil when a part is not text. An
-- assistant's parts that are not text (a refusal) are left out rather than refused.
local function content_text(content, skip_other_parts)
  if type(content) == "string" then
    return content
  end
  if not is_array(content) then
    return nil
  end
  local texts = {}
  for _, part in ipairs(content.array) do
    local fields = object_of(part)
    if not fields then
      return nil
    end
    local kind = name_of(fields.type)
    if kind == "text" then
      if type(fields.text) ~= "string" then
        return nil
      end
      texts[#texts + 1] = fields.text
    elseif kind == ESCAPED_NAME or not skip_other_parts then
      return nil
    end
  end
  return table.concat(texts)
end

local function text_block(text)
  return '{"type":"text","text":"' .. text .. '"}'
end

-- An image by URL or inline as a base64 data URL; nil for any other URL, or one written
-- with an escape (which only a decoder can read).
local function image_block(image)
  local url = object_of(image) and image.object.url
  if type(url) ~= "string" or url:find("\\", 1, true) then
    return nil
  end
  local media, data = url:match("^data:(image/[%w.+-]+);base64,(.*)$")
  if media ~= nil then
    return '{"type":"image","source":{"type":"base64","media_type":"' .. media
      .. '","data":"' .. data .. '"}}'
  elseif url:find("^https?://") then
    return '{"type":"image","source":{"type":"url","url":"' .. url .. '"}}'
  end
  return nil
end

local function user_blocks(content)
  if type(content) == "string" then
    return {text_block(content)}
  end
  if not is_array(content) then
    return nil
  end
  local blocks = {}
  for i, part in ipairs(content.array) do
    local fields = object_of(part)
    local kind = fields and name_of(fields.type)
    if kind == "text" and type(fields.text) == "string" then
      blocks[i] = text_block(fields.text)
    elseif kind == "image_url" then
      blocks[i] = image_block(fields.image_url)
    end
    if blocks[i] == nil then
      return nil  -- what the worker refuses
    end
  end
  return blocks
end

local function arguments_json(arguments)
  if not present(arguments) or arguments == "" then
    return "{}"
  end
  return arguments_object(arguments)
end

local function tool_use_block(call)
  local fields = object_of(call)
  local fn = fields and object_of(fields["function"])
  if not fn or type(fn.name) ~= "string" or present(fields.id) and type(fields.id) ~= "string" then
    return nil
  end
  local input = arguments_json(fn.arguments)
  if input == nil then
    return nil
  end
  return '{"type":"tool_use","id":"' .. string_or(fields.id, "") .. '","name":"' .. fn.name
    .. '","input":' .. input .. "}"
end

local function assistant_blocks(fields)
  local blocks = {}
  if present(fields.content) then
    local text = content_text(fields.content, true)
    if text == nil then
      return nil
    end
    if text ~= "" then
      blocks[1] = text_block(text)
    end
  end
  local calls = fields.tool_calls
  if present(calls) then
    if not is_array(calls) then
      return nil
    end
    for _, call in ipairs(calls.array) do
      local block = tool_use_block(call)
      if block == nil then
        return nil
      end
      blocks[#blocks + 1] = block
    end
  end
  return blocks
end

-- A tool message's result, for the user turn it joins.
local function tool_result_block(fields)
  if type(fields.tool_call_id) ~= "string" then
    return nil
  end
  local content = fields.content
  local text = (not present(content) or content == "") and "" or content_text(content, false)
  if text == nil then
    return nil
  end
  return '{"type":"tool_result","tool_use_id":"' .. fields.tool_call_id .. '","content":"'
    .. text .. '"}'
end

-- Anthropic alternates roles: a turn of the same role as the last joins it.
local function append(turns, role, blocks)
  local last = turns[#turns]
  if last ~= nil and last.role == role then
    for _, block in ipairs(blocks) do
      last.blocks[#last.blocks + 1] = block
    end
  else
    turns[#turns + 1] = {role = role, blocks = blocks}
  end
end

-- The turns and the system prompt's parts, or nil.
local function conversation(messages)
  if not is_array(messages) or #messages.array == 0 then
    return nil
  end
  local turns, system = {}, {}
  for _, message in ipairs(messages.array) do
    local fields = object_of(message)
    if not fields then
      return nil
    end
    local role, blocks = name_of(fields.role), nil
    if role == "system" or role == "developer" then
      local text = content_text(fields.content, false)
      if text == nil then
        return nil
      end
      system[#system + 1] = text
    else
      local turn = role
      if role == "user" then
        blocks = user_blocks(fields.content)
      elseif role == "assistant" then
        blocks = assistant_blocks(fields)
      elseif role == "tool" then
        local block = tool_result_block(fields)
        blocks, turn = block and {block}, "user"
      end
      if blocks == nil then
        return nil  -- an image, an unknown role, or what the worker refuses
      end
      append(turns, turn, blocks)
    end
  end
  return turns, system
end

local function max_tokens(fields)
  local value = fields.max_completion_tokens
  if not present(value) then
    value = fields.max_tokens
  end
  if not present(value) then
    return tostring(TRANSLATION.default_max_tokens)
  end
  local text = integer_text(value)
  if text == nil or tonumber(text) < 1 then
    return nil
  end
  return string.format("%d", tonumber(text))
end

local function stop_sequences(stop)
  if type(stop) == "string" then
    return '["' .. stop .. '"]'
  end
  return string_list(stop)
end

local function tool_entry(text, tool)
  local fields = object_of(tool)
  local fn = fields and name_of(fields.type) == "function" and object_of(fields["function"])
  if not fn or type(fn.name) ~= "string" then
    return nil
  end
  local parameters, description = fn.parameters, fn.description
  if present(parameters) and not object_of(parameters)
      or present(description) and type(description) ~= "string" then
    return nil
  end
  return '{"name":"' .. fn.name .. '","input_schema":' .. schema_or_default(text, parameters)
    .. (present(description) and ',"description":"' .. description .. '"' or "") .. "}"
end

local CHOICES = {auto = '{"type":"auto"', none = '{"type":"none"', required = '{"type":"any"'}

-- tool_choice as an open object, or false when there is none; nil when the worker decides.
local function tool_choice(choice)
  if not present(choice) then
    return false
  end
  if type(choice) == "string" then
    return CHOICES[choice]
  end
  local fn = object_of(choice) and object_of(choice.object["function"])
  return fn and type(fn.name) == "string" and '{"type":"tool","name":"' .. fn.name .. '"' or nil
end

-- The tools and the tool choice; "" without tools; nil when the worker decides. `text`: the
-- body they were read from.
local function tools_section(text, fields)
  local tools, entries = fields.tools, {}
  if present(tools) then
    if not is_array(tools) then
      return nil
    end
    for i, tool in ipairs(tools.array) do
      entries[i] = tool_entry(text, tool)
      if entries[i] == nil then
        return nil
      end
    end
  end
  local choice, parallel = tool_choice(fields.tool_choice), fields.parallel_tool_calls
  if choice == nil or present(parallel) and type(parallel) ~= "boolean" then
    return nil
  end
  if #entries == 0 then
    return ""
  end
  if parallel == false then
    choice = (choice or '{"type":"auto"') .. ',"disable_parallel_tool_use":true'
  end
  return ',"tools":[' .. table.concat(entries, ",") .. "]"
    .. (choice and ',"tool_choice":' .. choice .. "}" or "")
end

local function request(text, route)
  local body = json_read(text, true)
  local fields = object_of(body)
  if not fields then
    return nil
  end
  local n, stream = fields.n, fields.stream
  if present(n) and not (integer_text(n) and tonumber(n.number) <= 1 and tonumber(n.number) >= 0)
      or present(stream) and type(stream) ~= "boolean" then
    return nil  -- n other than 1 is refused
  end
  local turns, system = conversation(fields.messages)
  local tokens, tools = max_tokens(fields), tools_section(text, fields)
  if turns == nil or tokens == nil or tools == nil then
    return nil
  end
  local out = {'{"model":', route.model_json, ',"messages":['}
  for i, turn in ipairs(turns) do
    out[#out + 1] = (i > 1 and ',{"role":"' or '{"role":"') .. turn.role .. '","content":['
      .. table.concat(turn.blocks, ",") .. "]}"
  end
  out[#out + 1] = '],"max_tokens":' .. tokens
  if #system > 0 then
    out[#out + 1] = ',"system":"' .. table.concat(system, "\\n\\n") .. '"'
  end
  local parameters = sampling(fields)
  if parameters == nil then
    return nil
  end
  out[#out + 1] = parameters
  if present(fields.stop) then
    local stop = stop_sequences(fields.stop)
    if stop == nil then
      return nil
    end
    out[#out + 1] = ',"stop_sequences":' .. stop
  end
  if stream == true then
    out[#out + 1] = ',"stream":true'
  end
  if present(fields.user) then
    if type(fields.user) ~= "string" then
      return nil
    end
    out[#out + 1] = ',"metadata":{"user_id":"' .. fields.user .. '"}'
  end
  out[#out + 1] = tools .. "}"
  return table.concat(out)
end

local function openai_error(status, message)
  local kind = error_kind(status)
  return '{"error":{"message":' .. message .. ',"type":"' .. kind[1] .. '","code":"'
    .. kind[2] .. '"}}'
end

local USAGE_KEYS = {"input_tokens", "output_tokens", "cache_read_input_tokens",
                    "cache_creation_input_tokens"}

-- An Anthropic usage object's counts, 0 for each one missing or not an integer.
local function usage_counts(usage)
  local counts = {}
  for _, key in ipairs(USAGE_KEYS) do
    counts[key] = count(usage, key)
  end
  return counts
end

-- OpenAI counts cache reads and writes as prompt tokens; Anthropic does not.
local function openai_usage(counts)
  local cached = counts.cache_read_input_tokens or 0
  local prompt = (counts.input_tokens or 0) + cached + (counts.cache_creation_input_tokens or 0)
  local output = counts.output_tokens or 0
  return string.format(
    ',"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,'
      .. '"prompt_tokens_details":{"cached_tokens":%d}}', prompt, output, prompt + output, cached)
end

local function tool_call(text, fields)
  local input = fields.input == nil and "{}" or json_source(text, fields.input)
  return '{"id":"' .. string_or(fields.id, "") .. '","type":"function","function":{"name":"'
    .. string_or(fields.name, "") .. '","arguments":' .. json_quoted(input) .. "}}"
end

-- An Anthropic message as an OpenAI chat.completion.
local function completion(text, model)
  local parsed = json_read(text)
  local message = object_of(parsed)
  if not message then
    return openai_error(502, '"the provider returned an unreadable answer"')
  end
  local texts, calls = {}, {}
  local blocks = message.content
  for _, block in ipairs(type(blocks) == "table" and blocks.array or {}) do
    local fields = object_of(block)
    if fields and fields.type == "text" then
      texts[#texts + 1] = string_or(fields.text, "")
    elseif fields and fields.type == "tool_use" then
      calls[#calls + 1] = tool_call(text, fields)
    end
  end
  local name = message.model
  local reason = TRANSLATION.finish_reasons[string_or(message.stop_reason, "")] or "stop"
  local usage = message.usage
  local body = table.concat({
    '{"id":"', string_or(message.id, ""), '","object":"chat.completion","created":',
    tostring(os.time()), ',"model":',
    reply_model(name, model),
    ',"choices":[{"index":0,"message":{"role":"assistant","content":',
    #texts > 0 and '"' .. table.concat(texts) .. '"' or "null", ',"refusal":null',
    #calls > 0 and ',"tool_calls":[' .. table.concat(calls, ",") .. "]" or "",
    '},"logprobs":null,"finish_reason":"', reason, '"}]',
    object_of(usage) and openai_usage(usage_counts(usage.object)) or "",
    "}"})
  return body, usage_fields(usage)
end

-- A stream: Anthropic's Messages events in, OpenAI chat.completion.chunk events out, fed
-- chunks split at any byte. The stream ends with [DONE] only after message_stop, so a client
-- can tell a whole answer from a cut one; an `error` event becomes an OpenAI error chunk and
-- ends the stream.
local Stream = event_stream_class()

local function member(fields, name)
  local value = fields[name]
  return object_of(value) or {}
end

-- Every chunk starts with the stream's id, time and model, written once (`head`), and again
-- when message_start names them.
function Stream:identify(id, model)
  self.model = model
  self.head = '{"id":"' .. id .. '","object":"chat.completion.chunk","created":' .. self.created
    .. ',"model":' .. model .. ',"choices":'
end

local CHOICE = '[{"index":0,"delta":'
local UNFINISHED = ',"logprobs":null,"finish_reason":null}]}'

function Stream:chunk(delta, finish)
  if finish == nil then
    return self.head .. CHOICE .. delta .. UNFINISHED
  end
  return self.head .. CHOICE .. delta .. ',"logprobs":null,"finish_reason":"' .. finish .. '"}]}'
end

function Stream:envelope(choices, usage)
  return self.head .. choices .. (usage or "") .. "}"
end

-- Anthropic's message_start holds the input counts and a placeholder output count;
-- message_delta the final counts, each field it names replacing the earlier one.
function Stream:see_usage(kind, fields)
  if kind == "message_start" then
    local usage = member(fields, "message").usage
    if object_of(usage) then
      self.start = usage_counts(usage.object)
    end
  elseif kind == "message_delta" and object_of(fields.usage) then
    local usage = fields.usage.object
    local counts, seen = {}, usage_counts(usage)
    local base = self.usage or self.start or {}
    for _, key in ipairs(USAGE_KEYS) do
      counts[key] = usage[key] ~= nil and seen[key] or base[key] or 0
    end
    self.usage = counts
    self.report(counts)  -- complete now; a stream cut before has none, and is estimated
  end
end

function Stream:block_start(fields)
  local block = member(fields, "content_block")
  if block.type == "tool_use" then
    local index = integer_text(fields.index) or "-1"
    self.tools[index] = self.tool_count
    self.tool_count = self.tool_count + 1
    return self:chunk('{"tool_calls":[{"index":' .. self.tools[index] .. ',"id":"'
      .. string_or(block.id, "") .. '","type":"function","function":{"name":"'
      .. string_or(block.name, "") .. '","arguments":""}}]}')
  elseif block.type == "text" and type(block.text) == "string" and block.text ~= "" then
    return self:chunk('{"content":"' .. block.text .. '"}')
  end
end

function Stream:block_delta(fields)
  local delta = member(fields, "delta")
  if delta.type == "text_delta" then
    return self:chunk('{"content":"' .. string_or(delta.text, "") .. '"}')
  end
  local tool = self.tools[integer_text(fields.index) or "-1"]
  if delta.type == "input_json_delta" and tool ~= nil and type(delta.partial_json) == "string"
      and delta.partial_json ~= "" then
    return self:chunk('{"tool_calls":[{"index":' .. tool .. ',"function":{"arguments":"'
      .. delta.partial_json .. '"}}]}')
  end
end

function Stream:translate(kind, fields)
  if kind == "message_start" then
    local message = member(fields, "message")
    self:identify(string_or(message.id, ""), type(message.model) == "string"
                  and message.model ~= "" and '"' .. message.model .. '"' or self.model)
    return self:chunk('{"role":"assistant","content":""}')
  elseif kind == "content_block_start" then
    return self:block_start(fields)
  elseif kind == "content_block_delta" then
    return self:block_delta(fields)
  elseif kind == "message_delta" then
    local reason = member(fields, "delta").stop_reason
    return self:chunk("{}", TRANSLATION.finish_reasons[string_or(reason, "")] or "stop")
  elseif kind == "message_stop" then
    self.finished = true
    if not self.include_usage then
      return nil, true
    end
    return self:envelope("[]", openai_usage(self.usage or {})), true
  elseif kind == "error" then
    self.finished = true
    local error = member(fields, "error")
    return '{"error":{"message":"' .. string_or(error.message, "stream error")
      .. '","type":"' .. string_or(error.type, "api_error") .. '","code":null}}'
  end
end

-- Most of a stream's events are text deltas: the text of one written compactly, as
-- Anthropic writes them, is found without reading the event as a whole (any other spelling
-- is read the general way, with the same result).
local DELTA_HEAD = '{"type":"content_block_delta","index":'
local TEXT_HEAD = ',"delta":{"type":"text_delta","text":"'

local function compact_text_delta(data)
  if data:sub(1, #DELTA_HEAD) ~= DELTA_HEAD then
    return nil
  end
  local index = #DELTA_HEAD + 1
  local after = digits_end(data, index)
  if after == index or byte(data, index) == 48 and after > index + 1
      or data:sub(after, after + #TEXT_HEAD - 1) ~= TEXT_HEAD then
    return nil
  end
  local open = after + #TEXT_HEAD - 1
  local close = string_end(data, open)
  if close == nil or data:sub(close + 1) ~= "}}"
      or not string_contents(data, open + 1, close - 1) then
    return nil
  end
  return data:sub(open + 1, close - 1)
end

-- One event's data: the OpenAI events it becomes, appended to `out`.
function Stream:dispatch(name, data, out)
  if self.finished then
    return
  end
  local text = compact_text_delta(data)
  if text ~= nil then
    -- In one piece: most of a stream's events are these.
    out[#out + 1] = "data: " .. self.head .. CHOICE .. '{"content":"' .. text .. '"}'
      .. UNFINISHED .. "\n\n"
    return
  end
  local parsed = json_read(data)
  local fields = object_of(parsed)
  if not fields then
    return
  end
  local kind = fields.type  -- the data's own type names the event, as it does for Anthropic
  if kind == nil then
    kind = name
  end
  self:see_usage(kind, fields)
  local event, done = self:translate(kind, fields)
  if event ~= nil then
    out[#out + 1] = "data: " .. event .. "\n\n"
  end
  if done then
    out[#out + 1] = "data: [DONE]\n\n"
  end
end

-- `report(fields)` is given the stream's usage fields each time they are complete.
local function stream(model, include_usage, report)
  local state = Stream.new({created = tostring(os.time()), include_usage = include_usage,
                            report = report, tools = {}, tool_count = 0, finished = false})
  state:identify("", json_quoted(model))
  return state
end

TRANSLATIONS.openai_anthropic = translation(request, openai_error, completion, stream)

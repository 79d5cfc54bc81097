-- Anthropic Messages clients served by an OpenAI-compatible chat completions API, translated
-- in Envoy for the requests whose every field this code knows: text and image blocks, tools,
-- tool calls and their results, the sampling parameters, stop sequences and the user, whole
-- or streamed. The same mapping as ext_proc/translators/anthropic_openai.py,
-- anthropic_openai_request.py and anthropic_openai_stream.py, held to the same outputs by
-- tests/integration/test_lua_anthropic_openai.py. Anything else goes to a worker's attempt
-- (`request` returns nil), which translates or refuses it exactly.

-- A string, or blocks that must all be objects.
local function blocks_of(content)
  if type(content) == "string" then
    return {{object = {type = "text", text = content}}}
  end
  if not is_array(content) then
    return nil
  end
  for _, block in ipairs(content.array) do
    if not object_of(block) then
      return nil
    end
  end
  return content.array
end

-- The text of content whose blocks must all be text.
local function text_of(content)
  local blocks = blocks_of(content)
  if blocks == nil then
    return nil
  end
  local texts = {}
  for i, block in ipairs(blocks) do
    local fields = block.object
    if name_of(fields.type) ~= "text" or type(fields.text) ~= "string" then
      return nil
    end
    texts[i] = fields.text
  end
  return table.concat(texts)
end

local function image_url(fields)
  local source = object_of(fields.source)
  local kind = source and name_of(source.type)
  if kind == "url" and type(source.url) == "string" then
    return source.url
  elseif kind == "base64" and type(source.media_type) == "string"
      and type(source.data) == "string" then
    return "data:" .. source.media_type .. ";base64," .. source.data
  end
  return nil
end

local function tool_message(fields)
  if type(fields.tool_use_id) ~= "string" then
    return nil
  end
  local text = not present(fields.content) and "" or text_of(fields.content)
  return text and '{"role":"tool","tool_call_id":"' .. fields.tool_use_id .. '","content":"'
    .. text .. '"}'
end

-- A user turn: its tool results first, as OpenAI wants each right after the call.
local function user_messages(content, messages)
  local blocks = blocks_of(content)
  if blocks == nil then
    return nil
  end
  local parts, texts, plain = {}, {}, true
  for _, block in ipairs(blocks) do
    local fields = block.object
    local kind = name_of(fields.type)
    if kind == "text" and type(fields.text) == "string" then
      parts[#parts + 1] = '{"type":"text","text":"' .. fields.text .. '"}'
      texts[#texts + 1] = fields.text
    elseif kind == "image" then
      local url = image_url(fields)
      if url == nil then
        return nil
      end
      parts[#parts + 1] = '{"type":"image_url","image_url":{"url":"' .. url .. '"}}'
      plain = false
    elseif kind == "tool_result" then
      local result = tool_message(fields)
      if result == nil then
        return nil
      end
      messages[#messages + 1] = result
    else
      return nil
    end
  end
  if #parts > 0 then
    messages[#messages + 1] = '{"role":"user","content":' .. ((plain and #parts == 1)
      and '"' .. texts[1] .. '"' or "[" .. table.concat(parts, ",") .. "]") .. "}"
  end
  return messages
end

local function assistant_message(text, content)
  local blocks = blocks_of(content)
  if blocks == nil then
    return nil
  end
  local texts, calls = {}, {}
  for _, block in ipairs(blocks) do
    local fields = block.object
    local kind = name_of(fields.type)
    if kind == "text" and type(fields.text) == "string" then
      texts[#texts + 1] = fields.text
    elseif kind == "tool_use" then
      if type(fields.id) ~= "string" or type(fields.name) ~= "string" then
        return nil
      end
      local input = fields.input == nil and "{}" or json_source(text, fields.input)
      calls[#calls + 1] = '{"id":"' .. fields.id .. '","type":"function","function":{"name":"'
        .. fields.name .. '","arguments":' .. json_quoted(input) .. "}}"
    elseif kind ~= "thinking" and kind ~= "redacted_thinking" then  -- reasoning: not replayed
      return nil
    end
  end
  return '{"role":"assistant","content":' .. (#texts > 0 and '"' .. table.concat(texts) .. '"'
    or "null") .. (#calls > 0 and ',"tool_calls":[' .. table.concat(calls, ",") .. "]" or "")
    .. "}"
end

local function openai_tools(text, fields)
  local tools, entries = fields.tools, {}
  if present(tools) and tools ~= false then  -- false reads as none, as with the workers
    if not is_array(tools) then
      return nil
    end
    for i, tool in ipairs(tools.array) do
      local entry = object_of(tool)
      local schema, description = entry and entry.input_schema, entry and entry.description
      if not entry or type(entry.name) ~= "string"
          or present(schema) and not object_of(schema)
          or present(description) and type(description) ~= "string" then
        return nil
      end
      entries[i] = '{"type":"function","function":{"name":"' .. entry.name .. '","parameters":'
        .. schema_or_default(text, schema)
        .. (present(description) and ',"description":"' .. description .. '"' or "") .. "}}"
    end
  end
  local choice = fields.tool_choice
  if present(choice) and not object_of(choice) then
    return nil
  end
  if #entries == 0 then
    return ""
  end
  local out = ',"tools":[' .. table.concat(entries, ",") .. "]"
  if not present(choice) then
    return out
  end
  local kind = name_of(choice.object.type)
  if kind == "auto" or kind == "none" then
    out = out .. ',"tool_choice":"' .. kind .. '"'
  elseif kind == "any" then
    out = out .. ',"tool_choice":"required"'
  elseif kind == "tool" and type(choice.object.name) == "string" then
    out = out .. ',"tool_choice":{"type":"function","function":{"name":"'
      .. choice.object.name .. '"}}'
  else
    return nil
  end
  if choice.object.disable_parallel_tool_use == true then
    out = out .. ',"parallel_tool_calls":false'
  end
  return out
end

local function request(text, route)
  local fields = object_of(json_read(text, true))
  local tokens = fields and integer_text(fields.max_tokens)
  local streamed = fields and fields.stream
  if tokens == nil or tonumber(tokens) < 1
      or present(streamed) and type(streamed) ~= "boolean" then
    return nil  -- no max_tokens, or a stream of the wrong type: the worker refuses them
  end
  local messages = {}
  if present(fields.system) then
    local system = text_of(fields.system)
    if system == nil then
      return nil
    end
    messages[1] = '{"role":"system","content":"' .. system .. '"}'
  end
  local turns = fields.messages
  if not is_array(turns) or #turns.array == 0 then
    return nil
  end
  for _, turn in ipairs(turns.array) do
    local turn_fields = object_of(turn)
    local role = turn_fields and name_of(turn_fields.role)
    if role == "user" then
      if user_messages(turn_fields.content, messages) == nil then
        return nil
      end
    elseif role == "assistant" then
      local reply = assistant_message(text, turn_fields.content)
      if reply == nil then
        return nil
      end
      messages[#messages + 1] = reply
    else
      return nil
    end
  end
  local out = {'{"model":', route.model_json, ',"messages":[', table.concat(messages, ","),
               '],"max_completion_tokens":', string.format("%d", tonumber(tokens))}
  local parameters = sampling(fields)
  if parameters == nil then
    return nil
  end
  out[#out + 1] = parameters
  -- false when there are none, nil when they are not a list of strings
  local stop = present(fields.stop_sequences) and string_list(fields.stop_sequences)
  if stop == nil then
    return nil
  elseif stop and stop ~= "[]" then
    out[#out + 1] = ',"stop":' .. stop
  end
  if streamed == true then
    -- Without include_usage an OpenAI stream reports no tokens at all.
    out[#out + 1] = ',"stream":true,"stream_options":{"include_usage":true}'
  end
  local metadata = fields.metadata
  if present(metadata) then
    if not object_of(metadata) then
      return nil
    end
    if type(metadata.object.user_id) == "string" then
      out[#out + 1] = ',"user":"' .. metadata.object.user_id .. '"'
    end
  end
  local tools = openai_tools(text, fields)
  if tools == nil then
    return nil
  end
  out[#out + 1] = tools .. "}"
  return table.concat(out)
end

local function anthropic_error(status, message)
  return '{"type":"error","error":{"type":"' .. error_kind(status)[3] .. '","message":'
    .. message .. "}}"
end

-- A tool call's arguments as the tool's input: a model's malformed JSON is kept under a key.
local function tool_input(arguments)
  if type(arguments) ~= "string" or arguments == "" then
    return "{}"
  end
  return arguments_object(arguments) or '{"_raw_arguments":"' .. arguments .. '"}'
end

-- OpenAI counts cache reads as prompt tokens; Anthropic does not.
local function anthropic_usage(usage)
  local details = object_of(usage.prompt_tokens_details)
  local cached = details and count(details, "cached_tokens") or 0
  return string.format('{"input_tokens":%d,"output_tokens":%d,"cache_read_input_tokens":%d,'
    .. '"cache_creation_input_tokens":0}', math.max(count(usage, "prompt_tokens") - cached, 0),
    count(usage, "completion_tokens"), cached)
end

-- An OpenAI chat.completion as an Anthropic message.
local function message(text, model)
  local completion = object_of(json_read(text))
  local choices = completion and completion.choices
  local choice = is_array(choices) and object_of(choices.array[1])
  if not choice then
    return anthropic_error(502, '"the provider returned an unreadable answer"')
  end
  local reply, content = object_of(choice.message) or {}, {}
  if type(reply.content) == "string" and reply.content ~= "" then
    content[1] = '{"type":"text","text":"' .. reply.content .. '"}'
  end
  for _, call in ipairs(is_array(reply.tool_calls) and reply.tool_calls.array or {}) do
    local fields = object_of(call)
    local fn = fields and object_of(fields["function"])
    if fn then
      content[#content + 1] = '{"type":"tool_use","id":"' .. string_or(fields.id, "")
        .. '","name":"' .. string_or(fn.name, "") .. '","input":' .. tool_input(fn.arguments)
        .. "}"
    end
  end
  local name, usage = completion.model, object_of(completion.usage)
  local body = table.concat({
    '{"id":"', string_or(completion.id, ""), '","type":"message","role":"assistant","model":',
    reply_model(name, model),
    ',"content":[', table.concat(content, ","), '],"stop_reason":"',
    TRANSLATION.stop_reasons[string_or(choice.finish_reason, "")] or "end_turn",
    '","stop_sequence":null,"usage":',
    usage and anthropic_usage(usage) or '{"input_tokens":0,"output_tokens":0}', "}"})
  return body, usage_fields(completion.usage)
end

-- A stream: OpenAI chat.completion.chunk events in, Anthropic's Messages events out. A new
-- content block opens whenever the kind of fragment changes; one tool call streams at a time,
-- the fragments of any other (a provider may interleave parallel calls) are kept and sent
-- whole, a block each, when the answer ends, since a closed block takes no more input. The
-- usage chunk (the request asks for it) comes after the finish_reason, so message_delta and
-- message_stop wait for [DONE]. Unlike a worker, this filter does not see the end of the body:
-- one that ends without [DONE] ends without message_stop, which is how the client tells.
local Events = event_stream_class()

local function event(name, data)
  return "event: " .. name .. "\ndata: " .. data .. "\n\n"
end

local function tool_block(id, name)
  return '{"type":"tool_use","id":"' .. id .. '","name":"' .. name .. '","input":{}}'
end

local function input_delta(partial_json)
  return '{"type":"input_json_delta","partial_json":"' .. partial_json .. '"}'
end

function Events:start(fields, out)
  if self.started then
    return
  end
  self.started = true
  if type(fields.model) == "string" and fields.model ~= "" then
    self.model = '"' .. fields.model .. '"'
  end
  out[#out + 1] = event("message_start", '{"type":"message_start","message":{"id":"'
    .. string_or(fields.id, "") .. '","type":"message","role":"assistant","model":'
    .. self.model .. ',"content":[],"stop_reason":null,"stop_sequence":null,"usage":'
    .. anthropic_usage({}) .. "}}")
end

function Events:close(out)
  if self.block < 0 then
    return
  end
  out[#out + 1] = event("content_block_stop",
                        '{"type":"content_block_stop","index":' .. self.block .. "}")
  self.block, self.open_kind = -1, ""
end

function Events:open(kind, block, force, out)
  if kind == self.open_kind and not force then
    return
  end
  self:close(out)
  self.block, self.open_kind, self.blocks = self.blocks, kind, self.blocks + 1
  out[#out + 1] = event("content_block_start", '{"type":"content_block_start","index":'
    .. self.block .. ',"content_block":' .. block .. "}")
end

function Events:delta(delta, out)
  out[#out + 1] = event("content_block_delta", '{"type":"content_block_delta","index":'
    .. self.block .. ',"delta":' .. delta .. "}")
end

function Events:add_text(text, out)
  self:open("text", '{"type":"text","text":""}', false, out)
  self:delta('{"type":"text_delta","text":"' .. text .. '"}', out)
end

function Events:stream_tool(index, id, fn, out)
  local kind = "tool:" .. index
  if id ~= "" or kind ~= self.open_kind then
    self:open(kind, tool_block(id, string_or(fn.name, "")), id ~= "", out)
    self.streaming = index  -- the call that streams
  end
  if type(fn.arguments) == "string" and fn.arguments ~= "" then
    self:delta(input_delta(fn.arguments), out)
  end
end

-- A fragment of a call other than the one streaming, kept for the end.
function Events:keep(index, id, fn)
  local kept
  for at = #self.kept, 1, -1 do
    if self.kept[at].index == index then
      kept = self.kept[at]
      break
    end
  end
  if kept == nil or id ~= "" and kept.id ~= "" and id ~= kept.id then
    kept = {index = index, id = "", name = "", arguments = {}}
    self.kept[#self.kept + 1] = kept
  end
  kept.id = kept.id ~= "" and kept.id or id
  kept.name = kept.name ~= "" and kept.name or string_or(fn.name, "")
  if type(fn.arguments) == "string" then
    kept.arguments[#kept.arguments + 1] = fn.arguments
  end
end

function Events:tool_call(call, out)
  local index = string.format("%d", tonumber(integer_text(call.index)) or 0)
  local id, fn = string_or(call.id, ""), object_of(call["function"]) or {}
  local streaming = self.streaming
  if streaming ~= nil and index ~= streaming and self.open_kind == "tool:" .. streaming then
    return self:keep(index, id, fn)  -- another call's fragment while one streams
  end
  -- The streaming call, a new one, or a new call reusing its index (the last one is done).
  self:stream_tool(index, id, fn, out)
end

-- Closes the open block, then sends each kept tool call as a block of its own.
function Events:close_all(out)
  self:close(out)
  for _, tool in ipairs(self.kept) do
    self:open("tool:" .. tool.index, tool_block(tool.id, tool.name), true, out)
    local arguments = table.concat(tool.arguments)
    if arguments ~= "" then
      self:delta(input_delta(arguments), out)
    end
    self:close(out)
  end
  self.kept = {}
end

function Events:chunk(fields, out)
  self:start(fields, out)
  local choices = fields.choices
  local choice = is_array(choices) and object_of(choices.array[1])
  if not choice then
    return
  end
  local delta = object_of(choice.delta) or {}
  if type(delta.content) == "string" and delta.content ~= "" then
    self:add_text(delta.content, out)
  end
  for _, call in ipairs(is_array(delta.tool_calls) and delta.tool_calls.array or {}) do
    local call_fields = object_of(call)
    if call_fields then
      self:tool_call(call_fields, out)
    end
  end
  if type(choice.finish_reason) == "string" then
    self.stop_reason = TRANSLATION.stop_reasons[choice.finish_reason] or "end_turn"
    self:close_all(out)
  end
end

function Events:error(message, out)
  self.ended = true
  out[#out + 1] = event("error", '{"type":"error","error":{"type":"api_error","message":'
    .. message .. "}}")
end

function Events:finish(out)
  if not self.started then
    return self:error('"the provider\'s stream carried no answer"', out)
  end
  self.ended = true
  self:close_all(out)
  out[#out + 1] = event("message_delta", '{"type":"message_delta","delta":{"stop_reason":"'
    .. (self.stop_reason or "end_turn") .. '","stop_sequence":null},"usage":'
    .. anthropic_usage(self.usage or {}) .. "}")
  out[#out + 1] = event("message_stop", '{"type":"message_stop"}')
end

-- The text a chunk adds to the answer, when that is all it does, found without reading it
-- into tables (most of a stream's chunks are these): a chunk checked whole and written
-- without an escape (an escaped key reads otherwise), after the first, with no error, usage,
-- tool call or finish reason. Nil for any other chunk, which Events:chunk reads instead.
local MAX_DEPTH = 64  -- a deeper chunk is read the general way
local CHUNK_KEYS = key_set({"choices", "error", "usage"})
local CHOICE_KEYS = key_set({"delta", "finish_reason"})
local DELTA_KEYS = key_set({"content", "tool_calls"})

local function added_text(data)
  local open = skip_space(data, 1)
  if open == nil or byte(data, open) ~= 123 or data:find("\\", open, true) then
    return nil
  end
  local after = valid_end(data, open, MAX_DEPTH)
  if after == nil or skip_space(data, after) ~= nil then
    return nil
  end
  local chunk = members_at(data, open, CHUNK_KEYS)
  local choices = chunk.choices and byte(data, chunk.choices) == 91
    and skip_space(data, chunk.choices + 1)
  if not choices or byte(data, choices) ~= 123 or chunk.error and byte(data, chunk.error) == 123
      or chunk.usage and byte(data, chunk.usage) == 123 then
    return nil
  end
  local choice = members_at(data, choices, CHOICE_KEYS)
  if choice.finish_reason and byte(data, choice.finish_reason) == 34
      or not choice.delta or byte(data, choice.delta) ~= 123 then
    return nil
  end
  local delta = members_at(data, choice.delta, DELTA_KEYS)
  local content = delta.content
  if delta.tool_calls and byte(data, delta.tool_calls) == 91
      or not content or byte(data, content) ~= 34 or byte(data, content + 1) == 34 then
    return nil
  end
  return data:sub(content + 1, string_end(data, content) - 1)
end

function Events:dispatch(_, data, out)
  if self.ended then
    return
  end
  if data == "[DONE]" or #data < 64 and data:match("^%s*(.-)%s*$") == "[DONE]" then
    return self:finish(out)
  end
  local text = self.started and added_text(data)
  if text then
    return self:add_text(text, out)
  end
  local fields = object_of(json_read(data))
  if not fields then
    return
  end
  local error = object_of(fields.error)
  if error then
    return self:error('"' .. string_or(error.message, "stream error") .. '"', out)
  end
  local usage = object_of(fields.usage)
  if usage then
    self.usage = usage
    self.report(usage_fields(fields.usage))  -- OpenAI's usage chunk is its final count
  end
  self:chunk(fields, out)
end

-- `report(fields)` is given the stream's usage fields once they are known.
local function stream(model, _, report)
  return Events.new({model = json_quoted(model), report = report, started = false,
                     ended = false, block = -1, open_kind = "", blocks = 0, kept = {}})
end

TRANSLATIONS.anthropic_openai = translation(request, anthropic_error, message, stream)

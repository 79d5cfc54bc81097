-- Runs only on the replies to requests the lane translated (lane.lua): the reply, a success
-- or an error, whole or streamed, goes back to the client in the schema it called. Having
-- read it, the translation also writes its usage fields for the access log, in the
-- provider's schema, where Envoy's own reply parse (skipped for these replies) would have.
-- Should the translation itself fail (a defect), the client gets an error in its schema
-- rather than the provider's bytes.
local NAMES = TRANSLATION.names

function envoy_on_response(handle)
  local namespace = handle:streamInfo():dynamicMetadata():get(NAMES.namespace)
  local direct = namespace and namespace[NAMES.direct]
  local translation = direct and TRANSLATIONS[direct.translation]
  if translation == nil then
    return
  end
  local report = usage_reporter(handle)
  local headers = handle:headers()
  local status = tonumber(headers:get(":status")) or 0
  local content_type = headers:get("content-type") or ""
  if status >= 200 and status < 300 and content_type:find("text/event-stream", 1, true)
      and translation.stream ~= nil then
    headers:remove("content-length")  -- the events change length
    local stream = translation.stream(direct.model, namespace[NAMES.include_usage] == true,
                                      report)
    local failed = false
    for chunk in handle:bodyChunks() do
      local events = ""  -- after a failure, nothing more: the client sees no [DONE]
      if not failed then
        local ok, translated = pcall(stream.feed, stream, chunk:getBytes(0, chunk:length()))
        failed = not ok
        events = ok and translated or "data: " .. translation.failure() .. "\n\n"
      end
      chunk:setBytes(events)
    end
    return
  end
  local body = handle:body()
  if body == nil then
    return  -- a reply without a body: nothing to translate
  end
  local ok, reply, usage = pcall(translation.reply, status, body:getBytes(0, body:length()),
                                 direct.model)
  body:setBytes(ok and reply or translation.failure())
  handle:headers():replace("content-type", "application/json")
  if ok and usage ~= nil then
    report(usage)
  end
end

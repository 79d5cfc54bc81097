-- Runs on the replies Envoy forwards alone, but for those the lane translated (whose
-- translation reports their usage itself) and the streams whose usage the lane asked for
-- (their usage event's remover reads it): the usage the reply reports, written where the
-- access log carries it to the workers, which meter the request from it. A stream's usage
-- events are read as they pass; a whole JSON reply's usage object once the reply is whole.
function envoy_on_response(handle)
  local content_type = handle:headers():get("content-type") or ""
  if content_type:find("text/event-stream", 1, true) then
    local reader, report = UsageReader.new(), usage_reporter(handle)
    local failed = false  -- a defect: the request is then metered as cut before its usage
    for chunk in handle:bodyChunks() do
      if not failed then
        failed = not pcall(reader.read, reader, chunk:getBytes(0, chunk:length()), report)
      end
    end
    return
  end
  if not content_type:find("application/json", 1, true) then
    return
  end
  local body = handle:body()
  if body == nil then
    return
  end
  local text = body:getBytes(0, body:length())
  local ok, fields = pcall(whole_reply_usage, text)
  if ok and fields ~= nil then
    usage_reporter(handle)(fields)
  end
end

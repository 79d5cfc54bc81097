-- Runs on the streams Envoy forwards alone, but for those the lane translated (whose
-- translation reports their usage itself): the usage the stream reports, written where the
-- access log carries it to the workers, which meter the request from it.
function envoy_on_response(handle)
  local content_type = handle:headers():get("content-type") or ""
  if not content_type:find("text/event-stream", 1, true) then
    return
  end
  local reader, report = UsageReader.new(), usage_reporter(handle)
  local failed = false  -- a defect: the request is then metered as cut before its usage
  for chunk in handle:bodyChunks() do
    if not failed then
      failed = not pcall(reader.read, reader, chunk:getBytes(0, chunk:length()), report)
    end
  end
end

-- Runs only on an OpenAI stream whose usage the lane asked for on the client's behalf
-- (stream_options.include_usage): the event that carries it, which the client did not ask
-- for, leaves the reply, its usage read on the way for the access log (UsageStripper; the
-- stream usage reader skips these streams).
function envoy_on_response(handle)
  local status = handle:headers():get(":status")
  local content_type = handle:headers():get("content-type") or ""
  if status ~= "200" or not content_type:find("text/event-stream", 1, true) then
    return
  end
  -- The reply gets shorter: a length the provider declared no longer holds (a stream
  -- without one goes chunked, as streams usually do).
  handle:headers():remove("content-length")
  local stripper, report, failed = UsageStripper.new(), usage_reporter(handle), false
  for chunk in handle:bodyChunks() do
    if not failed then
      local text = chunk:getBytes(0, chunk:length())
      local ok, kept = pcall(stripper.strip, stripper, text, report)
      if not ok then  -- a defect: what is held goes on, and the rest as it comes
        failed, kept = true, stripper.held .. text
      end
      if kept ~= nil then
        chunk:setBytes(kept)
      end
    end
  end
end

-- Runs only on an OpenAI stream whose usage the lane asked for on the client's behalf
-- (stream_options.include_usage): the event that carries it, which the client did not ask
-- for, leaves the reply (UsageStripper). The stream's usage reader, earlier on the reply's
-- way, has read it by then.
function envoy_on_response(handle)
  local status = handle:headers():get(":status")
  local content_type = handle:headers():get("content-type") or ""
  if status ~= "200" or not content_type:find("text/event-stream", 1, true) then
    return
  end
  -- The reply gets shorter: a length the provider declared no longer holds (a stream
  -- without one goes chunked, as streams usually do).
  handle:headers():remove("content-length")
  local stripper, failed = UsageStripper.new(), false
  for chunk in handle:bodyChunks() do
    if not failed then
      local text = chunk:getBytes(0, chunk:length())
      local ok, kept = pcall(stripper.strip, stripper, text)
      if not ok then  -- a defect: what is held goes on, and the rest as it comes
        failed, kept = true, stripper.held .. text
      end
      if kept ~= nil then
        chunk:setBytes(kept)
      end
    end
  end
end

-- Runs only on the replies to requests the lane translated (lane.lua): the whole reply, a
-- success or an error, goes back to the client in the schema it called. The reply's usage
-- has been read by then, from the provider's own schema, for the access log.
function envoy_on_response(handle)
  local namespace = handle:streamInfo():dynamicMetadata():get(TRANSLATION.names.namespace)
  local direct = namespace and namespace[TRANSLATION.names.direct]
  local translation = direct and TRANSLATIONS[direct.translation]
  if translation == nil then
    return
  end
  local body = handle:body()
  if body == nil then
    return  -- a reply without a body: nothing to translate
  end
  local headers = handle:headers()
  local status = tonumber(headers:get(":status")) or 0
  body:setBytes(translation.reply(status, body:getBytes(0, body:length()), direct.model))
  headers:replace("content-type", "application/json")
end

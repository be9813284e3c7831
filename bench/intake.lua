-- wrk script: single-event POSTs of unique session.connected events (cheap to apply),
-- so the figure is the durable intake path: parse, validate, group commit, answer.
local counter = 0
local thread_id = 0
setup = function(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end
request = function()
  counter = counter + 1
  local id = tid .. "-" .. counter
  local body = '{"id":"w' .. id .. '","session_id":"ws' .. id .. '","type":"session.connected","at":"2026-11-20T10:00:00Z"}'
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, body)
end

-- wrk script: single-event POSTs to /v1/events, each a `session.connected` of a new session
-- (the intake traffic of `casebridge loadgen --traffic intake`), ids unique per thread and run.
local threads = 0
local run = tostring(os.time()) .. "-" .. tostring(os.clock()):gsub("%.", "")

function setup(thread)
  threads = threads + 1
  thread:set("prefix", "wrk-" .. run .. "-" .. threads .. "-")
end

local counter = 0

request = function()
  counter = counter + 1
  local id = prefix .. counter
  local body = '{"id":"' .. id .. '-1","session_id":"' .. id ..
    '","type":"session.connected","at":"2026-12-03T10:00:00Z"}'
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, body)
end

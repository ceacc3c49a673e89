-- bench/webhooks.lua — wrk script for bench/webhooks.sh, two uses:
--
-- 1. publish (the default): the URL is evo's base, http://HOST:PORT; every request publishes
--    one event,
--      POST /v1/messages {"eventType":"bench.event","payload":{...203 bytes...}}  -> 202 {"id"}
--    (the same payload bench/webhooks_pgbench.sql inserts into the PostgreSQL outbox).
-- 2. listener capacity: with the environment variable WH_SIGNED naming a file written by
--    `bench/webhooks_report.py presign`, the URL is an `evo webhooks listen` receiver and every
--    request is one of the file's pre-signed Standard Webhooks deliveries (webhook-id,
--    webhook-timestamp, webhook-signature over the body evo itself would send), taken in turn,
--    so the receiver verifies an HMAC on each exactly as it does for evo's deliveries.
--
-- done() prints one line that bench/webhooks_report.py reads:
--   webhooks.lua: mode=publish|listener sent=N ok=N non2xx=N duration_us=N statuses=CODE:N,...
-- where ok counts the expected answers (202 for publish, 2xx for the listener).

local headers = { ["Content-Type"] = "application/json" }
local PAYLOAD = '{"orderId":"ord_2xK9fQ7mLp","customer":{"id":"cus_8HdT3vNq","email":' ..
                '"jane.doe@example.com"},"amount":4999,"currency":"EUR","items":[{"sku":' ..
                '"SKU-1001","qty":2},{"sku":"SKU-2002","qty":1}],"status":"paid"}'

mode = "publish"
sent, ok, non2xx = 0, 0, 0
statuses = ""  -- "CODE:N,..." of the unexpected answers (a string: thread:get copies scalars)

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

local reqs, n_reqs, next_req = {}, 0, 1
local by_status = {}

function init(args)
  local signed = os.getenv("WH_SIGNED")
  if signed and signed ~= "" then
    mode = "listener"
    -- Each line: PATH \t WEBHOOK-ID \t TIMESTAMP \t SIGNATURE \t BODY
    for line in io.lines(signed) do
      local path, id, ts, sig, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)$")
      if path then
        n_reqs = n_reqs + 1
        reqs[n_reqs] = wrk.format("POST", path, {
          ["Content-Type"] = "application/json",
          ["webhook-id"] = id,
          ["webhook-timestamp"] = ts,
          ["webhook-signature"] = sig,
        }, body)
      end
    end
    if n_reqs == 0 then
      error("webhooks.lua: no signed requests in " .. signed)
    end
  else
    n_reqs = 1
    reqs[1] = wrk.format("POST", "/v1/messages", headers,
                         '{"eventType":"bench.event","payload":' .. PAYLOAD .. '}')
  end
end

function request()
  sent = sent + 1
  local r = reqs[next_req]
  next_req = next_req + 1
  if next_req > n_reqs then next_req = 1 end
  return r
end

function response(status, hdrs, body)
  local good
  if mode == "publish" then good = status == 202 else good = status >= 200 and status < 300 end
  if good then
    ok = ok + 1
  else
    non2xx = non2xx + 1
    by_status[status] = (by_status[status] or 0) + 1
    local parts = {}
    for code, n in pairs(by_status) do parts[#parts + 1] = code .. ":" .. n end
    statuses = table.concat(parts, ",")
  end
end

function done(summary, latency, requests)
  local t, codes = { sent = 0, ok = 0, non2xx = 0 }, {}
  local m = "publish"
  for _, thread in ipairs(threads) do
    for k in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
    m = thread:get("mode") or m
    for code, n in string.gmatch(thread:get("statuses") or "", "(%d+):(%d+)") do
      codes[code] = (codes[code] or 0) + tonumber(n)
    end
  end
  local parts = {}
  for code, n in pairs(codes) do parts[#parts + 1] = code .. ":" .. n end
  io.write(string.format("webhooks.lua: mode=%s sent=%d ok=%d non2xx=%d duration_us=%d statuses=%s\n",
                         m, t.sent, t.ok, t.non2xx, summary.duration,
                         #parts > 0 and table.concat(parts, ",") or "-"))
end

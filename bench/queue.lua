-- bench/queue.lua — wrk script for bench/queue.sh. The URL is the queue,
-- http://HOST:PORT/v1/queues/NAME; every message goes through the three steps a consumer takes:
--   POST .../messages            {"payload":{"n":1,"text":"x...x"}}   -> 201 {"id":"..."}
--   POST .../leases              {"max":1,"visibilitySeconds":30}     -> 200 {"leases":[...]}
--   POST .../leases/LEASE_ID:ack                                       -> 204
-- wrk's Lua has no per-connection state (request() and response() run per thread, for all of
-- the thread's connections), so each thread keeps a count of enqueued, not yet leased messages
-- and a FIFO of lease ids to ack: request() sends an ack when a lease id waits, else a lease
-- when an enqueue was answered, else an enqueue. Each 201 thus earns one lease and each leased
-- message one ack; an empty lease is dropped (the next request of that turn is an enqueue).
-- The answers tell the steps apart by status: 201 enqueue, 200 lease, 204 ack.
-- done() prints one line that bench/queue_report.py reads:
--   queue.lua: enq_sent=N enq_ok=N lease_sent=N leased=N lease_empty=N ack_sent=N acked=N
--              non2xx=N duration_us=N statuses=CODE:N,...

local headers = { ["Content-Type"] = "application/json" }
local enq_req, lease_req, ack_prefix

-- counters, read back by done() through thread:get
enq_sent, enq_ok, lease_sent, leased, lease_empty, ack_sent, acked, non2xx = 0, 0, 0, 0, 0, 0, 0, 0
statuses = ""  -- "CODE:N,..." of the non-2xx answers (a string: thread:get copies scalars)

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

local credits = 0                       -- answered enqueues awaiting their lease
local fifo, head, tail = {}, 1, 0       -- lease ids awaiting their ack
local by_status = {}

function init(args)
  local base = wrk.path:gsub("/+$", "")
  local payload = '{"n":1,"text":"' .. string.rep("x", 84) .. '"}'  -- 101 bytes
  enq_req = wrk.format("POST", base .. "/messages", headers, '{"payload":' .. payload .. '}')
  lease_req = wrk.format("POST", base .. "/leases", headers, '{"max":1,"visibilitySeconds":30}')
  ack_prefix = base .. "/leases/"
end

function request()
  if head <= tail then
    local id = fifo[head]
    fifo[head] = nil
    head = head + 1
    ack_sent = ack_sent + 1
    return wrk.format("POST", ack_prefix .. id .. ":ack")
  end
  if credits > 0 then
    credits = credits - 1
    lease_sent = lease_sent + 1
    return lease_req
  end
  enq_sent = enq_sent + 1
  return enq_req
end

function response(status, hdrs, body)
  if status == 204 then
    acked = acked + 1
  elseif status == 201 then
    enq_ok = enq_ok + 1
    credits = credits + 1
  elseif status == 200 then
    local id = body and body:match('"leaseId"%s*:%s*"([^"]+)"')
    if id then
      leased = leased + 1
      tail = tail + 1
      fifo[tail] = id
    else
      lease_empty = lease_empty + 1
    end
  else
    non2xx = non2xx + 1
    by_status[status] = (by_status[status] or 0) + 1
    local parts = {}
    for code, n in pairs(by_status) do parts[#parts + 1] = code .. ":" .. n end
    statuses = table.concat(parts, ",")
  end
end

function done(summary, latency, requests)
  local keys = { "enq_sent", "enq_ok", "lease_sent", "leased", "lease_empty", "ack_sent", "acked",
                 "non2xx" }
  local t, codes = {}, {}
  for _, k in ipairs(keys) do t[k] = 0 end
  for _, thread in ipairs(threads) do
    for _, k in ipairs(keys) do t[k] = t[k] + (thread:get(k) or 0) end
    for code, n in string.gmatch(thread:get("statuses") or "", "(%d+):(%d+)") do
      codes[code] = (codes[code] or 0) + tonumber(n)
    end
  end
  local parts = {}
  for code, n in pairs(codes) do parts[#parts + 1] = code .. ":" .. n end
  local line = "queue.lua:"
  for _, k in ipairs(keys) do line = line .. string.format(" %s=%d", k, t[k]) end
  io.write(line .. string.format(" duration_us=%d statuses=%s\n", summary.duration,
                                 #parts > 0 and table.concat(parts, ",") or "-"))
end

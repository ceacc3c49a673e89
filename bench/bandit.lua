-- bench/bandit.lua — wrk script for bench/bandit.sh. The URL is the pull route,
-- http://HOST:PORT/v1/experiments/NAME/pulls; the mode follows "--":
--   wrk ... -s bench/bandit.lua URL -- pulls   POST {} to the pull route (a static request:
--                                              request/response are dropped in init, so wrk
--                                              neither rebuilds requests nor parses bodies)
--   wrk ... -s bench/bandit.lua URL -- mix     a pull -> reward mix: every pull's "pullId" is
--                                              parsed from its answer and rewarded exactly once
--                                              on .../rewards, {"pullId":ID,"reward":0|1}, 1 with
--                                              probability a=0.04, b=0.05, c=0.06 (else 0.05)
-- wrk's Lua has no per-connection state (request() and response() run per thread, for all of
-- the thread's connections), so the mix keeps a per-thread FIFO of answered, unrewarded pulls:
-- request() sends a reward for the oldest one when there is one, else a pull. Every pull's
-- answer is followed by one reward, so the stream alternates pull, reward, pull, reward in
-- aggregate (rewards = pulls - at most one in flight per connection), and no pull is rewarded
-- twice: a 409 (duplicate) from the server is a server bug, counted apart.
-- In mix mode done() prints one line that bench/bandit_report.py reads:
--   bandit.lua mix: pulls_sent=N rewards_sent=N ids=N status_409=N non2xx=N reward_ones=N

mode = "pulls"  -- a global: done() reads it through thread:get
local pull_path, reward_path
local headers = { ["Content-Type"] = "application/json" }

wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"

-- counters, read back by done() through thread:get
pulls_sent, rewards_sent, ids, status_409, non2xx, reward_ones = 0, 0, 0, 0, 0, 0

local threads = {}
local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_no", next_thread)
  table.insert(threads, thread)
end

-- FIFO of answered pulls awaiting their reward: the raw JSON id token and the arm
local q_id, q_arm, q_head, q_tail = {}, {}, 1, 0
-- ids this thread rewarded lately, so that an answer to a reward that echoes the pullId is not
-- taken for a new pull (two generations of 4096, far more than the rewards in flight)
local recent, older, n_recent = {}, {}, 0
local p_one = { a = 0.04, b = 0.05, c = 0.06 }

local function remember(id)
  recent[id] = true
  n_recent = n_recent + 1
  if n_recent >= 4096 then
    older, recent, n_recent = recent, {}, 0
  end
end

function init(args)
  mode = args[1] or "pulls"
  if mode ~= "mix" then
    -- static pulls: no request() and no response(), the cheapest wrk loop
    request = nil
    response = nil
    return
  end
  pull_path = wrk.path
  reward_path = (wrk.path:gsub("/pulls$", "/rewards"))
  math.randomseed(os.time() * 1000 + (thread_no or 0))
end

function request()
  if q_head <= q_tail then
    local id, arm = q_id[q_head], q_arm[q_head]
    q_id[q_head], q_arm[q_head] = nil, nil
    q_head = q_head + 1
    local r = 0
    if math.random() < (p_one[arm] or 0.05) then
      r = 1
      reward_ones = reward_ones + 1
    end
    remember(id)
    rewards_sent = rewards_sent + 1
    return wrk.format("POST", reward_path, headers, '{"pullId":' .. id .. ',"reward":' .. r .. '}')
  end
  pulls_sent = pulls_sent + 1
  return wrk.format("POST", pull_path, headers, "{}")
end

function response(status, hdrs, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if status == 409 then status_409 = status_409 + 1 end
    return
  end
  if not body then return end
  -- the id as its JSON token: a string ("...") or, should a server send one, a number
  local id = body:match('"pullId"%s*:%s*("[^"]*")') or body:match('"pullId"%s*:%s*(%-?%d+)')
  if not id or recent[id] or older[id] then return end
  ids = ids + 1
  q_tail = q_tail + 1
  q_id[q_tail] = id
  q_arm[q_tail] = body:match('"arm"%s*:%s*"([^"]*)"')
end

function done(summary, latency, requests)
  local t = { pulls_sent = 0, rewards_sent = 0, ids = 0, status_409 = 0, non2xx = 0, reward_ones = 0 }
  local any_mix = false
  for _, thread in ipairs(threads) do
    if thread:get("mode") == "mix" then any_mix = true end
    for k, _ in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
  end
  if any_mix then
    io.write(string.format(
      "bandit.lua mix: pulls_sent=%d rewards_sent=%d ids=%d status_409=%d non2xx=%d reward_ones=%d\n",
      t.pulls_sent, t.rewards_sent, t.ids, t.status_409, t.non2xx, t.reward_ones))
  end
end

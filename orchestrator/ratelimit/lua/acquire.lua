-- orchestrator's limiter: check and book every scope of one request, atomically.
-- The exact mirror of orchestrator/ratelimit/bucket.py `decide` (read it for the why).
--
-- KEYS[1..n]  one string per scope: "<tat> <cool>" (when the counter is empty, cooldown end);
--             a string, not a hash, so that one SET with PX writes and re-arms its expiry
-- KEYS[n+1]   the epoch hash {id, lost_s, seq}: which incarnation of the state Redis holds
-- KEYS[n+2]   fair-share hash of the request's domain pool (only when a strategy is given):
--             "<strategy>" share tat, "<strategy>|w" weight, "<strategy>|d" the share's decay
--             when booked, "<strategy>|a" its score in the active set, "~W" weight of that set
-- KEYS[n+3]   the pool's active set: strategy -> when it stops being active
-- ARGV[1] now_s ("" = Redis TIME; tests pass a time)   ARGV[2] risk_reducing (0|1)
-- ARGV[3] reserve_fraction   ARGV[4] max_wait_s   ARGV[5] ttl_ms   ARGV[6] transit_s
-- ARGV[7] strategy ("" = none)   ARGV[8] weight   ARGV[9] active_window_s
-- ARGV[10] epoch id the caller holds ("" = no check: tests of the maths alone)
-- ARGV[11] the scopes, packed (one argument is far cheaper to send than seven per scope):
--          "threshold decay_per_s cost is_pool tat_floor uncapped missing_tat" per scope,
--          joined by "|"; uncapped 1: the venue takes it past the threshold (CancelAll): it
--          fits now. tat_floor: the caller's last known tat of the scope (state lost with a
--          Redis restart comes back no lower than what the freshest caller saw; 0 unknown).
--          missing_tat: the tat to assume when the key is absent (after a loss of state, a
--          scope nobody knows is full since the loss; 0 otherwise).
-- ARGV[12] the summed weight configured on the pool (0 = unknown): the burst is split by it
-- ARGV[13] the strategy's phase in [0, 1) (bucket.share_phase): a new share starts it spent
-- Returns {status, wait_s, binding scope index (0 = none), now_s, epoch id, seq, tat_1 .. tat_n}
-- status 1 granted (maybe with a wait), 0 refused (past max_wait_s), -1 the epoch is not the
-- caller's (nothing written, no tats). seq counts grants in the epoch (0 unless granted).
-- Numbers as strings.

local now_s = clock_s(ARGV[1])
local risk_reducing = ARGV[2] == '1'
local reserve_fraction = tonumber(ARGV[3])
local max_wait_s = tonumber(ARGV[4])
local ttl_ms = tonumber(ARGV[5])
local transit_s = tonumber(ARGV[6])
local strategy = ARGV[7]
local headroom = 1.0
if not risk_reducing then headroom = 1.0 - reserve_fraction end

local function earliest_fit(tat, limit, cost, decay)
  if cost > limit then return math.huge end
  return math.max(now_s, tat - (limit - cost) / decay)
end

local packed_scopes = {}
for packed in string.gmatch(ARGV[11], '[^|]+') do packed_scopes[#packed_scopes + 1] = packed end
local n = #packed_scopes
local epoch_key = KEYS[n + 1]
local epoch = redis.call('HGET', epoch_key, 'id') or ''
if ARGV[10] ~= '' and epoch ~= ARGV[10] then
  return {-1, '0', 0, fmt(now_s), epoch, 0}
end

local thresholds, decays, costs, tats, cools = {}, {}, {}, {}, {}
local pool = 0
local send_s = now_s
local binding = 0
for i = 1, n do
  local t, d, c, p, f, u, m = string.match(packed_scopes[i],
    '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  thresholds[i], decays[i], costs[i] = tonumber(t), tonumber(d), tonumber(c)
  if p == '1' and pool == 0 then pool = i end
  local tat, cool = read_scope(KEYS[i], tonumber(m))
  tats[i] = math.max(tat, tonumber(f))
  cools[i] = cool
  local limit = thresholds[i] * headroom - decays[i] * transit_s
  local fit = now_s
  if u ~= '1' then fit = math.max(earliest_fit(tats[i], limit, costs[i], decays[i]), cool) end
  if fit > send_s then
    send_s = fit
    binding = i
  end
end

local function reply(status, wait, index, new_tats, seq)
  local out = {status, fmt(wait), index, fmt(now_s), epoch, seq}
  for i = 1, n do out[#out + 1] = fmt(new_tats[i]) end
  return out
end

local share = nil
if strategy ~= '' and pool > 0 then
  local share_key, active_key = KEYS[n + 2], KEYS[n + 3]
  local weight = tonumber(ARGV[8])
  local window_s = tonumber(ARGV[9])
  local got = redis.call('HMGET', share_key, '~W', strategy, strategy .. '|w', strategy .. '|d',
    strategy .. '|a')
  local total = tonumber(got[1]) or 0.0
  local in_set = got[3]  -- a weight is stored exactly while the strategy is in the active set
  -- Strategies whose activity ended: out of the total, a bounded number per call (each leaves
  -- once per activity, so the work per permit stays O(1) amortized, never a walk of them all).
  local ended = redis.call('ZRANGEBYSCORE', active_key, '-inf', '(' .. fmt(now_s), 'LIMIT', 0, 16)
  local gone = {}
  for _, name in ipairs(ended) do
    if name ~= strategy then
      total = total - (tonumber(redis.call('HGET', share_key, name .. '|w')) or 0.0)
      gone[#gone + 1] = name
    end
  end
  if in_set then
    total = total + weight - (tonumber(got[3]) or 0.0)
  else
    total = total + weight
  end
  total = math.max(total, weight)
  local threshold, decay, cost = thresholds[pool], decays[pool], costs[pool]
  local portion = weight / total
  local share_decay = decay * portion
  local mine_tat = 0.0
  local stored_tat = tonumber(got[2])
  if stored_tat and stored_tat > now_s then
    -- The level it holds, in cost units, at the share's new decay.
    mine_tat = now_s + (stored_tat - now_s) * (tonumber(got[4]) or share_decay) / share_decay
  end
  local burst_portion = weight / math.max(total, tonumber(ARGV[12]) or 0.0)
  local share_limit = math.max(threshold * headroom * burst_portion, cost)
  local share_fit = earliest_fit(mine_tat, share_limit, cost, share_decay)
  if share_fit > send_s and not risk_reducing then
    -- Beyond its share: idle capacity is what leaves every other active share whole.
    local pool_limit = threshold * headroom - decay * transit_s
    local others = threshold * headroom * (1.0 - burst_portion)
    local borrow_limit = math.max(pool_limit - others, cost)
    local borrow_fit = earliest_fit(tats[pool], borrow_limit, cost, decay)
    local fit = share_fit
    if borrow_fit <= send_s or share_fit > tats[pool] then fit = math.min(share_fit, borrow_fit) end
    if fit > send_s then
      send_s = fit
      binding = pool
    end
  end
  -- Charged from the ask (virtual time), at most full; a new share starts its phase spent.
  local booked_tat = math.min(math.max(mine_tat, now_s) + cost / share_decay,
    send_s + share_limit / share_decay)
  if not stored_tat then booked_tat = booked_tat + tonumber(ARGV[13]) * cost / share_decay end
  -- The active set is written when its entry moves on by a second or more (or is new): once
  -- a second per strategy, not per permit; an entry may so end up to a second early.
  local until_s = send_s + window_s
  local stored_until = tonumber(got[5])
  if stored_until and until_s - stored_until < 1.0 then until_s = nil end
  share = {share_key, active_key, total, booked_tat, weight, until_s, gone, share_decay}
end

local wait_s = send_s - now_s
if wait_s > max_wait_s then
  return reply(0, wait_s, binding, tats, 0)
end
local booked = {}
for i = 1, n do
  booked[i] = math.max(tats[i], send_s) + costs[i] / decays[i]
  redis.call('SET', KEYS[i], fmt(booked[i]) .. ' ' .. fmt(cools[i]), 'PX', ttl_ms)
end
if share then
  local share_key, active_key, gone = share[1], share[2], share[7]
  for _, name in ipairs(gone) do
    redis.call('ZREM', active_key, name)
    redis.call('HDEL', share_key, name, name .. '|w', name .. '|d', name .. '|a')
  end
  redis.call('HSET', share_key, '~W', fmt(share[3]), strategy, fmt(share[4]),
    strategy .. '|w', fmt(share[5]), strategy .. '|d', fmt(share[8]))
  if share[6] then
    redis.call('HSET', share_key, strategy .. '|a', fmt(share[6]))
    redis.call('ZADD', active_key, fmt(share[6]), strategy)
    redis.call('PEXPIRE', share_key, ttl_ms)
    redis.call('PEXPIRE', active_key, ttl_ms)
  end
end
local seq = redis.call('HINCRBY', epoch_key, 'seq', 1)
return reply(1, wait_s, binding, booked, seq)

-- orchestrator's limiter: check and book every scope of one request, atomically.
-- The exact mirror of orchestrator/ratelimit/bucket.py `decide` (read it for the why).
-- One HMGET reads and one HSET writes all the state a permit touches (the epoch, each counter,
-- the strategy's share): each Redis call a script makes costs about as much as the maths.
-- Numbers are packed little-endian doubles ("<d": see the prelude), written here as [a b c].
--
-- KEYS[1]  the limiter's state hash (store/keys.py `limiter_state`):
--          "id", "seq"            the epoch Redis holds and the grants counted in it (text)
--          "r|<scope>"            one counter: [tat cool] (cool: when its cooldown ends)
--          "s|<pool>|<strategy>"  the strategy's share of the pool, while it is in the pool's
--                                 active set: [tat weight decay_when_booked until]
--          "s|<pool>|~W"          [summed weight of that set, bound]: bound is at most the
--                                 earliest end in the set, so a call before it has nothing to
--                                 expire and skips the range read
-- KEYS[2]  the pool's active set: strategy -> when it stops being active (only with a
--          strategy). Neither key expires: they change together, and idle members leave on
--          the pool's next grant.
-- ARGV[1]  now_s as text ("" = Redis TIME; tests pass a time)
-- ARGV[2]  the epoch id the caller holds ("-" = no check: tests of the maths alone)
-- ARGV[3]  the strategy whose fair share is charged ("-" = none)
-- ARGV[4]  the request and the limiter's settings: [risk_reducing max_wait_s weight
--          opening_weight phase reserve_fraction transit_s active_window_s]; risk_reducing
--          0|1; opening_weight: the summed weight configured on the pool (0 = unknown; the
--          burst is split by it); phase in [0, 1) (bucket.share_phase): a new share starts it
--          spent
-- ARGV[5]  the scopes' numbers, [threshold decay_per_s cost is_pool uncapped tat_floor
--          missing_tat] per scope; uncapped 1: the venue takes it past the threshold
--          (CancelAll): it fits now. tat_floor: the caller's last known tat of the scope
--          (state lost with a Redis restart comes back no lower than what the freshest caller
--          saw; 0 unknown). missing_tat: the tat to assume when the counter is absent (after a
--          loss of state, a scope nobody knows is full since the loss; 0 otherwise).
-- ARGV[6..] each scope's field ("r|<scope>"), in the same order
-- Returns [status wait_s binding now_s seq tat_1 .. tat_n]: status 1 granted (maybe with a
-- wait), 0 refused (past max_wait_s), -1 the epoch is not the caller's (nothing written, no
-- tats); binding the scope index that decided the wait (0 = none); seq counts grants in the
-- epoch (0 unless granted).

local now_s = clock_s(ARGV[1])
local held_epoch, strategy = ARGV[2], ARGV[3]
local risk_flag, max_wait_s, weight, opening_weight, phase, reserve_fraction, transit_s,
  window_s = struct.unpack('<dddddddd', ARGV[4])
local risk_reducing = risk_flag == 1
local headroom = 1.0
if not risk_reducing then headroom = 1.0 - reserve_fraction end

local function earliest_fit(tat, limit, cost, decay)
  if cost > limit then return math.huge end
  return math.max(now_s, tat - (limit - cost) / decay)
end

local n = #ARGV - 5
local names, thresholds, decays, costs, floors, uncapped, missing = {}, {}, {}, {}, {}, {}, {}
local pool = 0
local packed, at = ARGV[5], 1
for i = 1, n do
  local is_pool, free
  names[i] = ARGV[i + 5]
  thresholds[i], decays[i], costs[i], is_pool, free, floors[i], missing[i], at =
    struct.unpack('<ddddddd', packed, at)
  uncapped[i] = free == 1
  if is_pool == 1 and pool == 0 then pool = i end
end

local state = KEYS[1]
local fair = strategy ~= '-' and pool > 0
local fields = {'id', 'seq'}
for i = 1, n do fields[i + 2] = names[i] end
local share_prefix, me = nil, nil
if fair then
  share_prefix = 's|' .. string.sub(names[pool], 3) .. '|'
  me = share_prefix .. strategy
  fields[n + 3], fields[n + 4] = share_prefix .. '~W', me
end
local got = redis.call('HMGET', state, unpack(fields))
local epoch = got[1] or ''
local function reply(status, wait, index, new_seq, tats)
  return struct.pack('<ddddd' .. string.rep('d', #tats), status, wait, index, now_s, new_seq,
    unpack(tats))
end
if held_epoch ~= '-' and epoch ~= held_epoch then
  return reply(-1, 0, 0, 0, {})
end
local seq = tonumber(got[2]) or 0

local tats, cools = {}, {}
local send_s = now_s
local binding = 0
for i = 1, n do
  local tat, cool = parse_scope(got[i + 2], missing[i])
  tats[i] = math.max(tat, floors[i])
  cools[i] = cool
  local limit = thresholds[i] * headroom - decays[i] * transit_s
  local fit = now_s
  if not uncapped[i] then
    fit = math.max(earliest_fit(tats[i], limit, costs[i], decays[i]), cool)
  end
  if fit > send_s then
    send_s = fit
    binding = i
  end
end

local share = nil
if fair then
  local active_key = KEYS[2]
  local stored_total, stored_bound = nil, nil
  if got[n + 3] then stored_total, stored_bound = struct.unpack('<dd', got[n + 3]) end
  local total = stored_total or 0.0
  -- Present exactly while the strategy is in the active set.
  local stored_tat, stored_weight, stored_decay, stored_until
  if got[n + 4] then
    stored_tat, stored_weight, stored_decay, stored_until = struct.unpack('<dddd', got[n + 4])
  end
  -- Strategies whose activity ended: out of the total, a bounded number per call (each leaves
  -- once per activity, so the work per permit stays O(1) amortized, never a walk of them all).
  local ended = {}
  local swept = not stored_bound or now_s > stored_bound
  if swept then
    ended = redis.call('ZRANGEBYSCORE', active_key, '-inf', '(' .. fmt(now_s), 'LIMIT', 0, 16)
  end
  local gone = {}
  for _, name in ipairs(ended) do
    if name ~= strategy then gone[#gone + 1] = name end
  end
  local gone_fields = {}
  if #gone > 0 then
    for i, name in ipairs(gone) do gone_fields[i] = share_prefix .. name end
    for _, theirs in ipairs(redis.call('HMGET', state, unpack(gone_fields))) do
      if theirs then
        local _, their_weight = struct.unpack('<dd', theirs)
        total = total - their_weight
      end
    end
  end
  total = total + weight - (stored_weight or 0.0)
  total = math.max(total, weight)
  local threshold, decay, cost = thresholds[pool], decays[pool], costs[pool]
  local portion = weight / total
  local share_decay = decay * portion
  local mine_tat = 0.0
  if stored_tat and stored_tat > now_s then
    -- The level it holds, in cost units, at the share's new decay.
    mine_tat = now_s + (stored_tat - now_s) * stored_decay / share_decay
  end
  local burst_portion = weight / math.max(total, opening_weight)
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
  if not stored_tat then booked_tat = booked_tat + phase * cost / share_decay end
  -- The active set is written when its entry moves on by a second or more (or is new): once
  -- a second per strategy, not per permit; an entry may so end up to a second early.
  local until_s = send_s + window_s
  local new_until = true
  if stored_until and until_s - stored_until < 1.0 then
    until_s, new_until = stored_until, false
  end
  -- The bound: read afresh after a range read that saw the whole expired part; else lowered
  -- to a new entry (an entry moving later leaves it a bound still).
  local bound = stored_bound
  if new_until and (not bound or until_s < bound) then bound = until_s end
  share = {active_key, total, new_until and until_s, gone, gone_fields,
    struct.pack('<dddd', booked_tat, weight, share_decay, until_s),
    swept and #ended < 16, bound, stored_total, stored_bound}
end

local wait_s = send_s - now_s
if wait_s > max_wait_s then
  return reply(0, wait_s, binding, 0, tats)
end
seq = seq + 1
local booked = {}
local writes = {'seq', seq}
for i = 1, n do
  booked[i] = math.max(tats[i], send_s) + costs[i] / decays[i]
  writes[2 * i + 1], writes[2 * i + 2] = names[i], pack_scope(booked[i], cools[i])
end
if share then
  local active_key, total, new_until, gone = share[1], share[2], share[3], share[4]
  if #gone > 0 then
    redis.call('ZREM', active_key, unpack(gone))
    redis.call('HDEL', state, unpack(share[5]))
  end
  writes[#writes + 1], writes[#writes + 2] = me, share[6]
  if new_until then  -- the entry moved on by a second or more (or is new)
    redis.call('ZADD', active_key, fmt(new_until), strategy)
  end
  local bound = share[8] or -math.huge
  if share[7] then
    bound = tonumber(redis.call('ZRANGE', active_key, 0, 0, 'WITHSCORES')[2])
  end
  if total ~= share[9] or bound ~= share[10] then
    writes[#writes + 1], writes[#writes + 2] = share_prefix .. '~W', struct.pack('<dd', total, bound)
  end
end
redis.call('HSET', state, unpack(writes))
return reply(1, wait_s, binding, seq, booked)

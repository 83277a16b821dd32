-- orchestrator's limiter: check and book every scope of one request, atomically.
-- The exact mirror of orchestrator/ratelimit/bucket.py `decide` (read it for the why).
-- One HMGET reads and one HSET writes all the state a permit touches (the epoch, each counter,
-- the strategy's share): each Redis call a script makes costs about as much as the maths.
--
-- KEYS[1]  the limiter's state hash (store/keys.py `limiter_state`):
--          "id", "seq"            the epoch Redis holds and the grants counted in it
--          "r|<scope>"            one counter: "<tat> <cool>" (cool: cooldown end)
--          "s|<pool>|<strategy>"  the strategy's share of the pool, while it is in the pool's
--                                 active set: "<tat> <weight> <decay when booked> <until>"
--          "s|<pool>|~W"          "<summed weight of that set> <bound>": bound is at most the
--                                 earliest end in the set, so a call before it has nothing to
--                                 expire and skips the range read
-- KEYS[2]  the pool's active set: strategy -> when it stops being active (only with a
--          strategy). Neither key expires: they change together, and idle members leave on
--          the pool's next grant.
-- ARGV[1]  now_s ("" = Redis TIME; tests pass a time)
-- ARGV[2]  the request and the limiter's settings: "risk_reducing max_wait_s epoch strategy
--          weight opening_weight phase reserve_fraction transit_s active_window_s"
--          risk_reducing 0|1; epoch: the id the caller holds ("-" = no check: tests of the
--          maths alone); strategy "-" = none; opening_weight: the summed weight configured on
--          the pool (0 = unknown; the burst is split by it); phase in [0, 1)
--          (bucket.share_phase): a new share starts it spent
-- ARGV[3]  the scopes, packed (one argument is far cheaper to send than eight per scope):
--          "name threshold decay_per_s cost is_pool uncapped tat_floor missing_tat" per scope,
--          joined by "|"; uncapped 1: the venue takes it past the threshold (CancelAll): it
--          fits now. tat_floor: the caller's last known tat of the scope (state lost with a
--          Redis restart comes back no lower than what the freshest caller saw; 0 unknown).
--          missing_tat: the tat to assume when the counter is absent (after a loss of state, a
--          scope nobody knows is full since the loss; 0 otherwise).
-- Returns one string "status wait_s binding now_s seq tat_1 .. tat_n": status 1 granted (maybe
-- with a wait), 0 refused (past max_wait_s), -1 the epoch is not the caller's (nothing written,
-- no tats); binding the scope index that decided the wait (0 = none); seq counts grants in the
-- epoch (0 unless granted). One string, not a list: fewer reply objects for the client to build.

local now_s, now_text = clock(ARGV[1])
local risk_flag, max_wait_s, held_epoch, strategy, weight, opening_weight, phase,
  reserve_fraction, transit_s, window_s = string.match(ARGV[2],
  '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
local risk_reducing = risk_flag == '1'
max_wait_s, transit_s = tonumber(max_wait_s), tonumber(transit_s)
local headroom = 1.0
if not risk_reducing then headroom = 1.0 - tonumber(reserve_fraction) end

local function earliest_fit(tat, limit, cost, decay)
  if cost > limit then return math.huge end
  return math.max(now_s, tat - (limit - cost) / decay)
end

local names, thresholds, decays, costs, floors, uncapped, missing = {}, {}, {}, {}, {}, {}, {}
local pool = 0
local n = 0
for packed in string.gmatch(ARGV[3], '[^|]+') do
  n = n + 1
  local name, t, d, c, p, u, f, m = string.match(packed,
    '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  names[n] = 'r|' .. name
  thresholds[n], decays[n], costs[n] = tonumber(t), tonumber(d), tonumber(c)
  floors[n], uncapped[n], missing[n] = tonumber(f), u == '1', tonumber(m)
  if p == '1' and pool == 0 then pool = n end
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
if held_epoch ~= '-' and epoch ~= held_epoch then
  return '-1 0 0 ' .. now_text .. ' 0'
end
local seq = tonumber(got[2]) or 0

local tats, cools = {}, {}
local send_s = now_s
local binding = 0
for i = 1, n do
  local tat, cool, cool_text = parse_scope(got[i + 2], missing[i])
  tats[i] = math.max(tat, floors[i])
  cools[i] = cool_text
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

-- `tat_texts`: each scope's tat, formatted (a grant formats them once, for the write and this).
local function reply(status, wait, index, tat_texts, new_seq)
  local wait_text = '0'
  if wait ~= 0 then wait_text = fmt(wait) end
  return status .. ' ' .. wait_text .. ' ' .. index .. ' ' .. now_text .. ' ' .. new_seq .. ' '
    .. table.concat(tat_texts, ' ')
end

local share = nil
if fair then
  local active_key = KEYS[2]
  weight, window_s = tonumber(weight), tonumber(window_s)
  local stored_total, stored_bound = nil, nil
  if got[n + 3] then
    stored_total, stored_bound = string.match(got[n + 3], '^(%S+) (%S+)$')
    stored_total, stored_bound = tonumber(stored_total), tonumber(stored_bound)
  end
  local total = stored_total or 0.0
  -- Present exactly while the strategy is in the active set.
  local stored_tat, stored_weight, stored_decay, stored_until
  if got[n + 4] then
    stored_tat, stored_weight, stored_decay, stored_until =
      string.match(got[n + 4], '^(%S+) (%S+) (%S+) (%S+)$')
  end
  -- Strategies whose activity ended: out of the total, a bounded number per call (each leaves
  -- once per activity, so the work per permit stays O(1) amortized, never a walk of them all).
  local ended = {}
  local swept = not stored_bound or now_s > stored_bound
  if swept then
    ended = redis.call('ZRANGEBYSCORE', active_key, '-inf', '(' .. now_text, 'LIMIT', 0, 16)
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
        total = total - (tonumber(string.match(theirs, '^%S+ (%S+) ')) or 0.0)
      end
    end
  end
  total = total + weight - (tonumber(stored_weight) or 0.0)
  total = math.max(total, weight)
  local threshold, decay, cost = thresholds[pool], decays[pool], costs[pool]
  local portion = weight / total
  local share_decay = decay * portion
  local mine_tat = 0.0
  stored_tat = tonumber(stored_tat)
  if stored_tat and stored_tat > now_s then
    -- The level it holds, in cost units, at the share's new decay.
    mine_tat = now_s + (stored_tat - now_s) * (tonumber(stored_decay) or share_decay) / share_decay
  end
  local burst_portion = weight / math.max(total, tonumber(opening_weight) or 0.0)
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
  if not stored_tat then booked_tat = booked_tat + tonumber(phase) * cost / share_decay end
  -- The active set is written when its entry moves on by a second or more (or is new): once
  -- a second per strategy, not per permit; an entry may so end up to a second early.
  local until_s = send_s + window_s
  local until_text = nil
  if stored_until and until_s - tonumber(stored_until) < 1.0 then
    until_s, until_text = nil, stored_until
  else
    until_text = fmt(until_s)
  end
  -- What has not changed is written back as the text it was read as.
  local weight_text, decay_text = stored_weight, stored_decay
  if tonumber(stored_weight) ~= weight then weight_text = fmt(weight) end
  if tonumber(stored_decay) ~= share_decay then decay_text = fmt(share_decay) end
  -- The bound: read afresh after a range read that saw the whole expired part; else lowered
  -- to a new entry (an entry moving later leaves it a bound still).
  local bound = stored_bound
  if until_s and (not bound or until_s < bound) then bound = until_s end
  share = {active_key, total, until_s and until_text, gone, gone_fields,
    fmt(booked_tat) .. ' ' .. weight_text .. ' ' .. decay_text .. ' ' .. until_text,
    swept and #ended < 16, bound, stored_total, stored_bound}
end

local wait_s = send_s - now_s
if wait_s > max_wait_s then
  local tat_texts = {}
  for i = 1, n do tat_texts[i] = fmt(tats[i]) end
  return reply(0, wait_s, binding, tat_texts, 0)
end
seq = seq + 1
local tat_texts = {}
local writes = {'seq', seq}
for i = 1, n do
  tat_texts[i] = fmt(math.max(tats[i], send_s) + costs[i] / decays[i])
  writes[2 * i + 1], writes[2 * i + 2] = names[i], tat_texts[i] .. ' ' .. cools[i]
end
if share then
  local active_key, total, new_until, gone = share[1], share[2], share[3], share[4]
  if #gone > 0 then
    redis.call('ZREM', active_key, unpack(gone))
    redis.call('HDEL', state, unpack(share[5]))
  end
  writes[#writes + 1], writes[#writes + 2] = me, share[6]
  if new_until then  -- the entry moved on by a second or more (or is new)
    redis.call('ZADD', active_key, new_until, strategy)
  end
  local bound = share[8] or -math.huge
  if share[7] then
    bound = tonumber(redis.call('ZRANGE', active_key, 0, 0, 'WITHSCORES')[2])
  end
  if total ~= share[9] or bound ~= share[10] then
    writes[#writes + 1], writes[#writes + 2] = share_prefix .. '~W', fmt(total) .. ' ' .. fmt(bound)
  end
end
redis.call('HSET', state, unpack(writes))
return reply(1, wait_s, binding, tat_texts, seq)

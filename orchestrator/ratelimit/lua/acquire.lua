-- orchestrator's limiter: check and book every scope of one request, atomically.
-- The exact mirror of orchestrator/ratelimit/bucket.py `decide` (read it for the why).
--
-- KEYS[1..n]  one string per scope: "<tat> <cool>" (when the counter is empty, cooldown end);
--             a string, not a hash, so that one SET with PX writes and re-arms its expiry
-- KEYS[n+1]   fair-share hash of the request's domain pool (only when a strategy is given)
-- ARGV[1] now_s ("" = Redis TIME; tests pass a time)   ARGV[2] risk_reducing (0|1)
-- ARGV[3] reserve_fraction   ARGV[4] max_wait_s   ARGV[5] ttl_ms   ARGV[6] transit_s
-- ARGV[7] strategy ("" = none)   ARGV[8] weight   ARGV[9] total_weight   ARGV[10] active_window_s
-- ARGV[11] the scopes, packed (one argument is far cheaper to send than five per scope):
--          "threshold decay_per_s cost is_pool tat_floor uncapped" per scope, joined by "|";
--          uncapped 1: the venue takes it past the threshold (CancelAll): it fits now.
-- tat_floor: the caller's last known tat of the scope; state lost with a Redis restart comes
-- back no lower than what the freshest caller saw (0 when unknown).
-- Returns {granted 0|1, wait_s, binding scope index (0 = none), now_s, tat_1 .. tat_n};
-- numbers as strings.

local function fmt(x) return string.format('%.17g', x) end

local now_s
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now_s = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now_s = tonumber(ARGV[1])
end
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

local thresholds, decays, costs, tats, cools = {}, {}, {}, {}, {}
local n = 0
local pool = 0
local send_s = now_s
local binding = 0
for packed in string.gmatch(ARGV[11], '[^|]+') do
  n = n + 1
  local t, d, c, p, f, u = string.match(packed, '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  thresholds[n], decays[n], costs[n] = tonumber(t), tonumber(d), tonumber(c)
  if p == '1' and pool == 0 then pool = n end
  local stored = redis.call('GET', KEYS[n])
  local tat, cool = 0.0, 0.0
  if stored then
    local a, b = string.match(stored, '^(%S+) (%S+)$')
    tat, cool = tonumber(a), tonumber(b)
  end
  tats[n] = math.max(tat, tonumber(f))
  cools[n] = cool
  local limit = thresholds[n] * headroom - decays[n] * transit_s
  local fit = now_s
  if u ~= '1' then fit = math.max(earliest_fit(tats[n], limit, costs[n], decays[n]), cool) end
  if fit > send_s then
    send_s = fit
    binding = n
  end
end
local wait_s = send_s - now_s

local function reply(granted, wait, index, new_tats)
  local out = {granted, fmt(wait), index, fmt(now_s)}
  for i = 1, n do out[#out + 1] = fmt(new_tats[i]) end
  return out
end

local share_update = nil
if strategy ~= '' and pool > 0 then
  local weight = tonumber(ARGV[8])
  local total_weight = tonumber(ARGV[9])
  local active_window_s = tonumber(ARGV[10])
  if total_weight > 0 then
    local share_key = KEYS[n + 1]
    local mine_tat = tonumber(redis.call('HGET', share_key, strategy .. '|tat')) or 0.0
    local threshold, decay, cost = thresholds[pool], decays[pool], costs[pool]
    local portion = weight / total_weight
    local share_decay = decay * portion
    local share_limit = threshold * headroom * portion
    local share_fit = earliest_fit(mine_tat, share_limit, cost, share_decay)
    if share_fit > send_s and not risk_reducing then
      -- Borrowing: only now the other strategies' states are needed.
      local flat = redis.call('HGETALL', share_key)
      local known, names = {}, {}
      for j = 1, #flat, 2 do
        local name, field = string.match(flat[j], '^(.*)|(%a+)$')
        if name then
          if known[name] == nil then
            known[name] = {tat = 0.0, weight = 1.0, seen = -math.huge}
            names[#names + 1] = name
          end
          known[name][field] = tonumber(flat[j + 1])
        end
      end
      table.sort(names)
      local reserved = 0.0
      for _, name in ipairs(names) do
        local other = known[name]
        if name ~= strategy and now_s - other.seen <= active_window_s then
          local other_portion = other.weight / total_weight
          local other_limit = threshold * headroom * other_portion
          local used = math.max(0.0, (other.tat - now_s) * (decay * other_portion))
          reserved = reserved + math.max(0.0, other_limit - used)
        end
      end
      local pool_fit = earliest_fit(tats[pool], threshold * headroom - reserved, cost, decay)
      if wait_s > 0 or pool_fit > now_s then
        -- No idle capacity to borrow now: refused (not booked) until the share has room.
        local hint = math.min(share_fit, math.max(pool_fit, send_s)) - now_s
        return reply(0, hint, pool, tats)
      end
    end
    share_update = {share_key, math.max(mine_tat, send_s) + cost / share_decay, weight}
  end
end

if wait_s > max_wait_s then
  return reply(0, wait_s, binding, tats)
end
local booked = {}
for i = 1, n do
  booked[i] = math.max(tats[i], send_s) + costs[i] / decays[i]
  redis.call('SET', KEYS[i], fmt(booked[i]) .. ' ' .. fmt(cools[i]), 'PX', ttl_ms)
end
if share_update then
  redis.call('HSET', share_update[1], strategy .. '|tat', fmt(share_update[2]),
    strategy .. '|weight', fmt(share_update[3]), strategy .. '|seen', fmt(now_s))
  redis.call('PEXPIRE', share_update[1], ttl_ms)
end
return reply(1, wait_s, binding, booked)

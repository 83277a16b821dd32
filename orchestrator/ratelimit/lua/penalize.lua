-- After a venue rate-limit error: assume the counter full and hold everyone off for a cooldown.
-- Mirror of orchestrator/ratelimit/bucket.py `penalize`.
-- KEYS[1] scope state "<tat> <cool>". ARGV: now_s ("" = TIME), threshold, decay_per_s,
-- cooldown_s, ttl_ms.
local function fmt(x) return string.format('%.17g', x) end
local now_s
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now_s = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now_s = tonumber(ARGV[1])
end
local threshold, decay, cooldown_s = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tat, cool = 0.0, 0.0
local stored = redis.call('GET', KEYS[1])
if stored then
  local a, b = string.match(stored, '^(%S+) (%S+)$')
  tat, cool = tonumber(a), tonumber(b)
end
tat = math.max(tat, now_s + threshold / decay)
cool = math.max(cool, now_s + cooldown_s)
redis.call('SET', KEYS[1], fmt(tat) .. ' ' .. fmt(cool), 'PX', tonumber(ARGV[5]))
return {fmt(tat), fmt(cool)}

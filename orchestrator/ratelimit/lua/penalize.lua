-- After a venue rate-limit error: assume the counter full and hold everyone off for a cooldown.
-- Mirror of orchestrator/ratelimit/bucket.py `penalize`.
-- KEYS[1] scope hash. ARGV: now_s ("" = TIME), threshold, decay_per_s, cooldown_s, ttl_ms.
local function fmt(x) return string.format('%.17g', x) end
local now_s
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now_s = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now_s = tonumber(ARGV[1])
end
local threshold, decay, cooldown_s = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tat', 'cool')
local tat = math.max(tonumber(state[1]) or 0.0, now_s + threshold / decay)
local cool = math.max(tonumber(state[2]) or 0.0, now_s + cooldown_s)
redis.call('HSET', KEYS[1], 'tat', fmt(tat), 'cool', fmt(cool))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return {fmt(tat), fmt(cool)}

-- After a venue rate-limit error: assume the counter full and hold everyone off for a cooldown.
-- Mirror of orchestrator/ratelimit/bucket.py `penalize`.
-- KEYS[1] scope state "<tat> <cool>". ARGV: now_s ("" = TIME), threshold, decay_per_s,
-- cooldown_s, ttl_ms.
local now_s = clock_s(ARGV[1])
local threshold, decay, cooldown_s = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tat, cool = read_scope(KEYS[1], 0.0)
tat = math.max(tat, now_s + threshold / decay)
cool = math.max(cool, now_s + cooldown_s)
redis.call('SET', KEYS[1], fmt(tat) .. ' ' .. fmt(cool), 'PX', tonumber(ARGV[5]))
return {fmt(tat), fmt(cool)}

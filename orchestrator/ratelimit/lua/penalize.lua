-- After a venue rate-limit error: assume the counter full and hold everyone off for a cooldown.
-- Mirror of orchestrator/ratelimit/bucket.py `penalize`.
-- KEYS[1] the limiter's state hash. ARGV: now_s ("" = TIME), the counter's field ("r|<scope>"),
-- threshold, decay_per_s, cooldown_s (as text). Returns {tat, cool} as text.
local now_s = clock_s(ARGV[1])
local field = ARGV[2]
local threshold, decay, cooldown_s = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local tat, cool = parse_scope(redis.call('HGET', KEYS[1], field), 0.0)
tat = math.max(tat, now_s + threshold / decay)
cool = math.max(cool, now_s + cooldown_s)
redis.call('HSET', KEYS[1], field, pack_scope(tat, cool))
return {fmt(tat), fmt(cool)}

-- The venue reported a counter's level (WS `executions` with `ratecounter`): raise the scope to
-- it, never lower it. Budget spent outside the limiter (the web UI, another tool on the account)
-- then counts here too; what the limiter booked and the venue has not seen yet stays booked.
-- KEYS[1] the limiter's state hash. ARGV: now_s ("" = TIME), the counter's field ("r|<scope>"),
-- level, decay_per_s.
-- Reply: {raised (1 or 0), tat}. Nothing is written unless the tat rises; the cooldown is kept.
local now_s = clock_s(ARGV[1])
local field = ARGV[2]
local level, decay = tonumber(ARGV[3]), tonumber(ARGV[4])
local tat, cool = parse_scope(redis.call('HGET', KEYS[1], field), 0.0)
local venue_tat = now_s + level / decay
if level <= 0 or venue_tat <= tat then
  return {0, fmt(tat)}
end
redis.call('HSET', KEYS[1], field, pack_scope(venue_tat, cool))
return {1, fmt(venue_tat)}

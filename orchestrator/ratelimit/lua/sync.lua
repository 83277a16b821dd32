-- The venue reported a counter's level (WS `executions` with `ratecounter`): raise the scope to
-- it, never lower it. Budget spent outside the limiter (the web UI, another tool on the account)
-- then counts here too; what the limiter booked and the venue has not seen yet stays booked.
-- KEYS[1] scope state "<tat> <cool>". ARGV: now_s ("" = TIME), level, decay_per_s, ttl_ms.
-- Reply: {raised (1 or 0), tat}. Nothing is written unless the tat rises; the cooldown is kept.
local now_s = clock_s(ARGV[1])
local level, decay = tonumber(ARGV[2]), tonumber(ARGV[3])
local tat, cool = read_scope(KEYS[1], 0.0)
local venue_tat = now_s + level / decay
if level <= 0 or venue_tat <= tat then
  return {0, fmt(tat)}
end
redis.call('SET', KEYS[1], fmt(venue_tat) .. ' ' .. fmt(cool), 'PX', tonumber(ARGV[4]))
return {1, fmt(venue_tat)}

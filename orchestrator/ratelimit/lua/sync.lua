-- The venue reported a counter's level (WS `executions` with `ratecounter`): raise the scope to
-- it, never lower it. Budget spent outside the limiter (the web UI, another tool on the account)
-- then counts here too; what the limiter booked and the venue has not seen yet stays booked.
-- KEYS[1] scope state "<tat> <cool>". ARGV: now_s ("" = TIME), level, decay_per_s, ttl_ms.
-- Reply: {raised (1 or 0), tat}. Nothing is written unless the tat rises; the cooldown is kept.
local function fmt(x) return string.format('%.17g', x) end
local now_s
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now_s = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now_s = tonumber(ARGV[1])
end
local level, decay = tonumber(ARGV[2]), tonumber(ARGV[3])
local tat, cool = 0.0, 0.0
local stored = redis.call('GET', KEYS[1])
if stored then
  local a, b = string.match(stored, '^(%S+) (%S+)$')
  tat, cool = tonumber(a), tonumber(b)
end
local venue_tat = now_s + level / decay
if level <= 0 or venue_tat <= tat then
  return {0, fmt(tat)}
end
redis.call('SET', KEYS[1], fmt(venue_tat) .. ' ' .. fmt(cool), 'PX', tonumber(ARGV[4]))
return {1, fmt(venue_tat)}

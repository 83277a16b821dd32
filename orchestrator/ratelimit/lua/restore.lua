-- orchestrator's limiter: a process hands back the floors it holds after Redis lost its state.
-- Each counter's tat is raised to at least the caller's floor, never lowered; its cooldown kept.
--
-- KEYS[1]       the limiter's state hash
-- ARGV[1]       now_s ("" = Redis TIME)
-- ARGV[2..]     pairs: a counter's field ("r|<scope>"), the caller's tat floor of it (Redis's
--               clock)
-- Returns how many counters were raised (a floor already in the past, or below the stored tat,
-- writes nothing).

local now_s = clock_s(ARGV[1])
local fields, floors = {}, {}
for i = 2, #ARGV, 2 do
  local floor = tonumber(ARGV[i + 1])
  if floor > now_s then
    fields[#fields + 1] = ARGV[i]
    floors[#floors + 1] = floor
  end
end
if #fields == 0 then return 0 end
local stored = redis.call('HMGET', KEYS[1], unpack(fields))
local writes = {}
for i = 1, #fields do
  local tat, cool = parse_scope(stored[i], 0.0)
  if floors[i] > tat then
    writes[#writes + 1] = fields[i]
    writes[#writes + 1] = pack_scope(floors[i], cool)
  end
end
if #writes > 0 then redis.call('HSET', KEYS[1], unpack(writes)) end
return #writes / 2

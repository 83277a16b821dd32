-- orchestrator's limiter: a process hands back the floors it holds after Redis lost its state.
-- Each scope's tat is raised to at least the caller's floor, never lowered; its cooldown is kept.
--
-- KEYS[1..n]    one string per scope: "<tat> <cool>" (acquire.lua's format)
-- ARGV[1]       now_s ("" = Redis TIME)   ARGV[2] ttl_ms
-- ARGV[3..n+2]  the caller's tat floor of each key, on Redis's clock
-- Returns how many keys were raised (a floor already in the past, or below the stored tat,
-- writes nothing).

local now_s = clock_s(ARGV[1])
local ttl_ms = ARGV[2]
local raised = 0
for i = 1, #KEYS do
  local floor = tonumber(ARGV[i + 2])
  if floor > now_s then
    local tat, cool = read_scope(KEYS[i], 0.0)
    if floor > tat then
      redis.call('SET', KEYS[i], fmt(floor) .. ' ' .. fmt(cool), 'PX', ttl_ms)
      raised = raised + 1
    end
  end
end
return raised

-- orchestrator's limiter: a process hands back the floors it holds after Redis lost its state.
-- Each scope's tat is raised to at least the caller's floor, never lowered; its cooldown is kept.
--
-- KEYS[1..n]    one string per scope: "<tat> <cool>" (acquire.lua's format)
-- ARGV[1]       now_s ("" = Redis TIME)   ARGV[2] ttl_ms
-- ARGV[3..n+2]  the caller's tat floor of each key, on Redis's clock
-- Returns how many keys were raised (a floor already in the past, or below the stored tat,
-- writes nothing).

local function fmt(x) return string.format('%.17g', x) end

local now_s
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now_s = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now_s = tonumber(ARGV[1])
end
local ttl_ms = ARGV[2]
local raised = 0
for i = 1, #KEYS do
  local floor = tonumber(ARGV[i + 2])
  if floor > now_s then
    local tat, cool = 0.0, '0'
    local stored = redis.call('GET', KEYS[i])
    if stored then
      local a, b = string.match(stored, '^(%S+) (%S+)$')
      tat, cool = tonumber(a), b
    end
    if floor > tat then
      redis.call('SET', KEYS[i], fmt(floor) .. ' ' .. cool, 'PX', ttl_ms)
      raised = raised + 1
    end
  end
end
return raised

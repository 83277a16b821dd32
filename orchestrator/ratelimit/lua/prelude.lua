-- Shared by every limiter script: prepended to each when it is loaded
-- (orchestrator/ratelimit/scripts.py), since a Redis script cannot import another.

-- Numbers go back to Python as text: %.17g round-trips a double exactly.
local function fmt(x) return string.format('%.17g', x) end

-- The script's time: the test's ("" = Redis TIME, the one clock every process shares).
local function clock_s(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- A scope's stored "<tat> <cool>" as numbers; `missing_tat` and no cooldown when it is absent.
local function read_scope(key, missing_tat)
  local stored = redis.call('GET', key)
  if not stored then return missing_tat, 0.0 end
  local a, b = string.match(stored, '^(%S+) (%S+)$')
  return tonumber(a), tonumber(b)
end


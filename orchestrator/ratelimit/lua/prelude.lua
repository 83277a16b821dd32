-- Shared by every limiter script: prepended to each when it is loaded
-- (orchestrator/ratelimit/scripts.py), since a Redis script cannot import another.
-- The state is one hash (store/keys.py `limiter_state`): the epoch's fields, one field per
-- counter ("r|<scope>" = "<tat> <cool>") and the pools' fair shares ("s|<pool>|...").

-- Numbers go back to Python as text: %.17g round-trips a double exactly.
local function fmt(x) return string.format('%.17g', x) end

-- The script's time and its text: the test's ("" = Redis TIME, the one clock every process
-- shares). The text is exact (the number is read from it), so a reply need not format it.
local function clock(arg)
  if arg ~= '' then return tonumber(arg), arg end
  local t = redis.call('TIME')
  local text = t[1] .. '.' .. string.rep('0', 6 - #t[2]) .. t[2]
  return tonumber(text), text
end

local function clock_s(arg) return (clock(arg)) end

-- A counter's stored "<tat> <cool>": the numbers, and the cooldown's text (written back as it
-- was when only the tat changes: formatting a number costs about as much as a Redis call);
-- `missing_tat` and no cooldown when absent.
local function parse_scope(stored, missing_tat)
  if not stored then return missing_tat, 0.0, '0' end
  local a, b = string.match(stored, '^(%S+) (%S+)$')
  return tonumber(a), tonumber(b), b
end

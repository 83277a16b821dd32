-- Shared by every limiter script: prepended to each when it is loaded
-- (orchestrator/ratelimit/scripts.py), since a Redis script cannot import another.
-- The state is one hash (store/keys.py `limiter_state`): the epoch's fields, one field per
-- counter ("r|<scope>") and the pools' fair shares ("s|<pool>|...").
--
-- Numbers cross the wire and sit in the hash as little-endian IEEE doubles (Redis's bundled
-- `struct` library): exact, and a fifth of the cost of text (unpacking two doubles ~0.1 us,
-- `tonumber` ~0.25 us each, `string.format('%.17g')` ~0.5 us, a Redis call 0.3-0.8 us; Redis
-- 7.0 here); a request needs some thirty numbers. Text is left for what a person reads (the epoch, the replies of
-- the rarely called scripts).

-- %.17g round-trips a double exactly.
local function fmt(x) return string.format('%.17g', x) end

-- The script's time and its text: the test's ("" = Redis TIME, the one clock every process
-- shares). The text is exact (the number is read from it).
local function clock(arg)
  if arg ~= '' then return tonumber(arg), arg end
  local t = redis.call('TIME')
  local text = t[1] .. '.' .. string.rep('0', 6 - #t[2]) .. t[2]
  return tonumber(text), text
end

local function clock_s(arg) return (clock(arg)) end

-- A counter as stored: "<tat><cool>", two doubles (cool: when its cooldown ends);
-- `missing_tat` and no cooldown when absent.
local function parse_scope(stored, missing_tat)
  if not stored then return missing_tat, 0.0 end
  local tat, cool = struct.unpack('<dd', stored)
  return tat, cool
end

local function pack_scope(tat, cool) return struct.pack('<dd', tat, cool) end

-- orchestrator's limiter: which incarnation of its state Redis holds (read, created or bumped
-- atomically, so processes that notice a loss at the same moment agree on one new epoch).
--
-- KEYS[1]  the limiter's state hash: its epoch fields {id, lost_s, seq} (the counters and
--          shares beside them are left as they are)
-- ARGV[1]  mode: "read" (create the epoch when the hash has no id) or "bump" (a new epoch, but
--          only while the id is still ARGV[3]: of two processes that both notice, one bumps)
-- ARGV[2]  a random suffix for a new id; the id is "<Redis TIME>-<suffix>"
-- ARGV[3]  read: "1" when the caller held an earlier epoch (a missing hash is then a loss of
--          state: lost_s = now), "0" when it held none (a cold start: lost_s = 0, nothing to
--          assume); bump: the id the caller saw
-- ARGV[4]  now_s ("" = Redis TIME; tests pass a time)
-- Returns {id, lost_s, seq, now_s, changed}: the epoch as it stands after the call, changed 1
-- when this call wrote a new one. Numbers as strings.

local t = redis.call('TIME')
local now_s = tonumber(t[1]) + tonumber(t[2]) / 1000000
if ARGV[4] ~= '' then now_s = tonumber(ARGV[4]) end
local key = KEYS[1]
local got = redis.call('HMGET', key, 'id', 'lost_s', 'seq')
local id = got[1] or ''

local function new_epoch(lost_s)
  local new_id = t[1] .. '.' .. t[2] .. '-' .. ARGV[2]
  redis.call('HSET', key, 'id', new_id, 'lost_s', fmt(lost_s), 'seq', 0)
  return {new_id, fmt(lost_s), '0', fmt(now_s), 1}
end

if ARGV[1] == 'bump' then
  if id == ARGV[3] then return new_epoch(now_s) end
elseif id == '' then
  if ARGV[3] == '1' then return new_epoch(now_s) end
  return new_epoch(0)
end
return {id, got[2] or '0', got[3] or '0', fmt(now_s), 0}

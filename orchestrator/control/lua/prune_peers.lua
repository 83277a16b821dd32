-- Drop stale heartbeats, each only if it is still the value that was read as stale (a process
-- that beat meanwhile keeps its fresh heartbeat) (control/peers.py `live`).
-- KEYS[1] the processes hash. ARGV: process, heartbeat, process, heartbeat, ...
-- Returns how many were dropped.
local dropped = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    dropped = dropped + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return dropped

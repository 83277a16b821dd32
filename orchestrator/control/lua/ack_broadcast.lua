-- One process's answer to a broadcast copy, atomically (control/bus.py `ack_broadcast`).
-- KEYS[1] acks list, KEYS[2] the delivery's stream (this process's inbox).
-- ARGV[1] ack JSON, ARGV[2] acks ttl ms, ARGV[3] group, ARGV[4] delivery entry id.
-- Returns 1, or 0 when the copy was no longer pending (acked already: no second ack).
if redis.call('XACK', KEYS[2], ARGV[3], ARGV[4]) == 0 then
  return 0
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1

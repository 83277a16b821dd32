-- Exactly-once taking of one command id (control/bus.py `take`).
-- KEYS[1] the command record (hash state/entry/by), KEYS[2] the stream the delivery came from.
-- ARGV[1] reply_to (the main-stream entry the command arrived as), ARGV[2] this process,
-- ARGV[3] record ttl ms, ARGV[4] group, ARGV[5] the delivery's entry id in KEYS[2].
-- Returns 'new' (record created), 'again' (same entry, not done: handle it again), 'done' (same
-- entry, answered: the delivery is acked here), 'duplicate' (another entry used this id: a replay).
local entry = redis.call('HGET', KEYS[1], 'entry')
if not entry then
  redis.call('HSET', KEYS[1], 'state', 'taken', 'entry', ARGV[1], 'by', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 'new'
end
if entry ~= ARGV[1] then
  return 'duplicate'
end
if redis.call('HGET', KEYS[1], 'state') == 'done' then
  redis.call('XACK', KEYS[2], ARGV[4], ARGV[5])
  return 'done'
end
return 'again'

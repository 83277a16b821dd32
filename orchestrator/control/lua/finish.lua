-- Answer one delivery, atomically (control/bus.py `finish`).
-- KEYS[1] reply list, KEYS[2] the delivery's stream, KEYS[3] audit stream,
-- KEYS[4] (optional) the command record.
-- ARGV[1] reply JSON, ARGV[2] reply ttl ms, ARGV[3] group, ARGV[4] delivery entry id,
-- ARGV[5] audit max len, ARGV[6] audit time_s, ARGV[7] audit record JSON, ARGV[8] reply_to,
-- ARGV[9] this process.
-- The XACK goes first: an entry no longer pending was answered already (by us before a lost
-- reply, or by a consumer that claimed it), so nothing more is written and 0 is returned.
-- The record moves to done only if it belongs to this entry: a duplicate's refusal leaves the
-- first entry's record alone.
if redis.call('XACK', KEYS[2], ARGV[3], ARGV[4]) == 0 then
  return 0
end
if KEYS[4] and redis.call('HGET', KEYS[4], 'entry') == ARGV[8] then
  redis.call('HSET', KEYS[4], 'state', 'done', 'by', ARGV[9])
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
           'kind', 'command', 'time_s', ARGV[6], 'record', ARGV[7])
return 1

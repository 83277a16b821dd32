-- Hand one delivery to the process that runs its command, atomically (control/bus.py `route`).
-- KEYS[1] command record, KEYS[2] target inbox, KEYS[3] the delivery's stream.
-- ARGV[1] group, ARGV[2] delivery entry id, ARGV[3] reply_to, ARGV[4] target process,
-- ARGV[5] signed wire bytes, ARGV[6] this process, ARGV[7] inbox max len, ARGV[8] record ttl ms.
-- Returns 'routed'; 'duplicate' (the record belongs to another entry: nothing changes);
-- 'acked' (the delivery was no longer pending, so it was handled already: nothing changes).
local owner = redis.call('HGET', KEYS[1], 'entry')
if owner and owner ~= ARGV[3] then
  return 'duplicate'
end
if redis.call('XACK', KEYS[3], ARGV[1], ARGV[2]) == 0 then
  return 'acked'
end
redis.call('HSET', KEYS[1], 'state', 'routed', 'entry', ARGV[3], 'by', ARGV[4])
if not owner then
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*',
           'wire', ARGV[5], 'entry', ARGV[3], 'from', ARGV[6])
return 'routed'

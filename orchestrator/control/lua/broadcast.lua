-- Copy one command into every target's inbox, all or none (control/bus.py `broadcast`).
-- KEYS: the target inboxes. ARGV[1] signed wire bytes, ARGV[2] reply_to, ARGV[3] this process,
-- ARGV[4] inbox max len. Returns how many inboxes got it.
for _, inbox in ipairs(KEYS) do
  redis.call('XADD', inbox, 'MAXLEN', '~', ARGV[4], '*',
             'wire', ARGV[1], 'entry', ARGV[2], 'from', ARGV[3], 'broadcast', '1')
end
return #KEYS

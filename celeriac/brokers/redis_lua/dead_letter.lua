-- dead_letter.lua: moves a held message into the dead-letter stream. Needs lib.lua.
--
-- KEYS[1]  unacked         hash  tag -> [envelope, exchange, routing_key]
-- KEYS[2]  unacked_index   zset  tag -> time of delivery
-- KEYS[3]  leases          zset  tag -> lease expiry
-- KEYS[4]  dead letters    stream: queue, reason, time (UNIX seconds), message (envelope)
-- ARGV[1]  the delivery tag       ARGV[2]  its queue       ARGV[3]  the reason
--
-- Returns 1, or 0 when the tag is not held any more (then nothing changes).
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], '*', 'queue', ARGV[2], 'reason', ARGV[3],
  'time', tostring(server_now()), 'message', envelope_of(entry) or entry)
return 1

-- ack.lua: forgets held messages (ack, or reject without requeue). A tag that is not held
-- any more (acked already, or given back after its lease lapsed) changes nothing.
--
-- KEYS[1]  unacked         hash  tag -> [envelope, exchange, routing_key]
-- KEYS[2]  unacked_index   zset  tag -> time of delivery
-- KEYS[3]  leases          zset  tag -> lease expiry
-- ARGV     the delivery tags
redis.call('HDEL', KEYS[1], unpack(ARGV))
redis.call('ZREM', KEYS[2], unpack(ARGV))
redis.call('ZREM', KEYS[3], unpack(ARGV))
return #ARGV

-- renew.lua: extends the leases of messages still held. XX: a tag given back or acked
-- meanwhile is not re-added. Refreshing unacked_index too keeps Celery workers, which
-- restore by that score, from taking a message a live celeriac worker holds. Needs lib.lua.
--
-- KEYS[1]  unacked_index   zset  tag -> time of delivery or last renewal (now)
-- KEYS[2]  leases          zset  tag -> lease expiry (now + ARGV[1])
-- ARGV[1]  lease length, seconds
-- ARGV[2..] the delivery tags
local now = server_now()
local expiry = now + tonumber(ARGV[1])
local indexed, leased = {}, {}
for i = 2, #ARGV do
  indexed[#indexed + 1] = now
  indexed[#indexed + 1] = ARGV[i]
  leased[#leased + 1] = expiry
  leased[#leased + 1] = ARGV[i]
end
redis.call('ZADD', KEYS[2], 'XX', unpack(leased))
redis.call('ZADD', KEYS[1], 'XX', unpack(indexed))
return #ARGV - 1

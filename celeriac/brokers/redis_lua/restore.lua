-- restore.lua: gives back the messages whose holders stopped renewing (run by a claiming
-- consumer about once a second). Needs lib.lua.
--
-- KEYS[1]  unacked         hash  tag -> [envelope, exchange, routing_key] (kombu's layout)
-- KEYS[2]  unacked_index   zset  tag -> time of delivery or last renewal (kombu's layout)
-- KEYS[3]  leases          zset  tag -> lease expiry, celeriac holders only
-- KEYS[4]  dead letters    stream (unreadable entries go there)
-- ARGV[1]  global key prefix (also prefixes the queue lists messages go back to)
-- ARGV[2]  priority-step separator
-- ARGV[3]  priority steps, "0,3,6,9"
-- ARGV[4]  most entries looked at per kind (own lapsed leases, foreign lapsed entries)
-- ARGV[5]  visibility timeout of holders that do not renew (Celery workers), seconds
--
-- A celeriac holder's message comes back when its lease expires. A holder without a lease
-- (a Celery worker) is judged as Celery judges it: delivered more than ARGV[5] seconds
-- ago. Messages go to the head of their list, oldest last so it is taken first, as kombu
-- restores. Returns how many entries were looked at (the caller sweeps again soon when a
-- batch came back full).
local prefix, sep, steps = ARGV[1], ARGV[2], parse_steps(ARGV[3])
local batch = tonumber(ARGV[4])
local now = server_now()
local own = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, batch)
local foreign = redis.call(
  'ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[5]), 'LIMIT', 0, batch)
for i = #own, 1, -1 do
  give_back(KEYS, own[i], true, prefix, sep, steps)
end
for i = #foreign, 1, -1 do
  -- A celeriac holder renews its own lease; its unacked_index score is not its deadline.
  if not redis.call('ZSCORE', KEYS[3], foreign[i]) then
    give_back(KEYS, foreign[i], true, prefix, sep, steps)
  end
end
return #own + #foreign

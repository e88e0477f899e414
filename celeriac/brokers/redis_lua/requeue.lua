-- requeue.lua: gives held messages back to the tail of their queue, marked redelivered
-- (reject with requeue, as kombu's reject does). Needs lib.lua.
--
-- KEYS[1]  unacked         hash  tag -> [envelope, exchange, routing_key]
-- KEYS[2]  unacked_index   zset  tag -> time of delivery
-- KEYS[3]  leases          zset  tag -> lease expiry
-- KEYS[4]  dead letters    stream (unreadable entries go there)
-- ARGV[1]  global key prefix      ARGV[2]  priority-step separator
-- ARGV[3]  priority steps, "0,3,6,9"
-- ARGV[4..] the delivery tags; a tag not held any more is skipped
local prefix, sep, steps = ARGV[1], ARGV[2], parse_steps(ARGV[3])
local moved = 0
for i = 4, #ARGV do
  moved = moved + give_back(KEYS, ARGV[i], false, prefix, sep, steps)
end
return moved

-- claim.lua: the atomic claim. Moves due delayed messages to their lists, then takes up
-- to ARGV[1] messages and records each as held, in one step: a message is never out of
-- Redis between its list and the unacked records. Needs lib.lua and priority.lua.
--
-- KEYS[1]                unacked         hash  tag -> [envelope, "", queue] (kombu's layout)
-- KEYS[2]                unacked_index   zset  tag -> time of delivery (kombu's layout)
-- KEYS[3]                leases          zset  tag -> lease expiry (celeriac's own)
-- KEYS[3+i]              delayed zset of queue i, i = 1..n: "<step>|<envelope>" -> due time
-- KEYS[3+n+(j-1)*n+i]    list of queue i at priority step j: step-major, queue-minor, the
--                        order kombu's BRPOP uses, so higher priorities are taken first
-- ARGV[1]  most messages to take          ARGV[4]  n, the number of queues
-- ARGV[2]  lease length, seconds          ARGV[5]  most delayed messages moved per queue
-- ARGV[3]  tag prefix (unique per call)   ARGV[6]  priority-step separator
-- ARGV[6+i]    list key of queue i at step 0 (the other steps append sep .. step)
-- ARGV[6+n+i]  queue i's name as a JSON string (the routing key in unacked entries)
-- ARGV[7+2n]   how deep to look for a better priority inside a step list (the window)
-- ARGV[7+2n+2j-1], ARGV[7+2n+2j]  lowest and highest priority the lists of step j hold
--
-- Returns {now, earliest due time or "", earliest lease expiry or "", then for each
-- message taken: queue number, tag, envelope}.
local limit, lease, token = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local n, batch, sep = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local now = server_now()

-- Due delayed messages join the tail of their list, earliest first.
for i = 1, n do
  local due = redis.call('ZRANGEBYSCORE', KEYS[3 + i], '-inf', now, 'LIMIT', 0, batch)
  for _, member in ipairs(due) do
    local bar = string.find(member, '|', 1, true)
    local step = string.sub(member, 1, bar - 1)
    local key = ARGV[6 + i]
    if step ~= '0' then key = key .. sep .. step end
    redis.call('LPUSH', key, string.sub(member, bar + 1))
  end
  if #due > 0 then redis.call('ZREM', KEYS[3 + i], unpack(due)) end
end

local out = { tostring(now), '', '' }
local held, indexed, leased = {}, {}, {}
local left, count = limit, 0
local lists = #KEYS - 3 - n
local window = tonumber(ARGV[7 + 2 * n])
for k = 1, lists do
  if left <= 0 then break end
  local j = math.floor((k - 1) / n) + 1
  local floor, ceil = tonumber(ARGV[6 + 2 * n + 2 * j]), tonumber(ARGV[7 + 2 * n + 2 * j])
  local got = take(KEYS[3 + n + k], floor, ceil, left, window)
  if #got > 0 then
    local i = (k - 1) % n + 1
    for _, env in ipairs(got) do
      count = count + 1
      local tag = token .. count
      held[#held + 1] = tag
      held[#held + 1] = '[' .. env .. ', "", ' .. ARGV[6 + n + i] .. ']'
      indexed[#indexed + 1] = now
      indexed[#indexed + 1] = tag
      leased[#leased + 1] = now + lease
      leased[#leased + 1] = tag
      out[#out + 1] = i
      out[#out + 1] = tag
      out[#out + 1] = env
    end
    left = left - #got
  end
end
if count > 0 then
  redis.call('HSET', KEYS[1], unpack(held))
  redis.call('ZADD', KEYS[2], unpack(indexed))
  redis.call('ZADD', KEYS[3], unpack(leased))
end

-- When to look again: the next delayed message of these queues, the next lease to lapse.
local due_at
for i = 1, n do
  local first = redis.call('ZRANGE', KEYS[3 + i], 0, 0, 'WITHSCORES')
  if first[2] and (not due_at or tonumber(first[2]) < due_at) then due_at = tonumber(first[2]) end
end
if due_at then out[2] = tostring(due_at) end
local lapse = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if lapse[2] then out[3] = lapse[2] end
return out

-- requeue_dead.lua: puts dead letters back on the tail of their queues, marked
-- redelivered, and deletes them from the stream. Needs lib.lua.
--
-- KEYS[1]  dead letters    stream: queue, reason, time, message (envelope)
-- ARGV[1]  global key prefix (of the queue lists)     ARGV[2]  priority-step separator
-- ARGV[3]  priority steps, "0,3,6,9"
-- ARGV[4]  batch: with no id after it, requeue up to this many entries after ARGV[5]
-- ARGV[5]  the cursor: the last entry id seen ("-" to start from the oldest)
-- ARGV[6..] entry ids to requeue instead (an id that is not there is skipped)
--
-- Returns {how many went back, how many entries were looked at, the last id looked at}.
-- An entry without a queue (an unreadable message) stays where it is.
local prefix, sep, steps = ARGV[1], ARGV[2], parse_steps(ARGV[3])
local entries = {}
if #ARGV >= 6 then
  for i = 6, #ARGV do
    local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if found[1] then entries[#entries + 1] = found[1] end
  end
else
  local start = '-'
  if ARGV[5] ~= '-' then start = '(' .. ARGV[5] end
  entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', tonumber(ARGV[4]))
end
local moved, last = 0, ARGV[5]
for _, entry in ipairs(entries) do
  last = entry[1]
  local fields = {}
  for k = 1, #entry[2], 2 do fields[entry[2][k]] = entry[2][k + 1] end
  local env = fields.message
  if env and fields.queue and fields.queue ~= '' then
    local step = step_for(envelope_priority(env), steps)
    redis.call('LPUSH', list_key(prefix, fields.queue, step, sep), mark_redelivered(env))
    redis.call('XDEL', KEYS[1], entry[1])
    moved = moved + 1
  end
end
return { moved, #entries, last }

-- lib.lua: helpers prepended to the scripts that need them (see _load_scripts in redis.py).
-- Touches no key itself; every KEYS/ARGV it reads are passed in by the calling script.

-- Server time in seconds: every consumer compares leases and due times on one clock,
-- whatever the clocks of their hosts say.
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- The position of the opening quote of the JSON string whose closing quote is at `close`.
-- A quote preceded by an odd number of backslashes is inside the string.
local function string_start(s, close)
  local i = close - 1
  while i > 0 do
    if string.byte(s, i) == 34 then
      local j, slashes = i - 1, 0
      while j > 0 and string.byte(s, j) == 92 do
        slashes, j = slashes + 1, j - 1
      end
      if slashes % 2 == 0 then return i end
    end
    i = i - 1
  end
  return nil
end

-- Skips whitespace backwards from `i`; returns the position of the last non-space byte.
local function skip_back(s, i)
  while i > 0 and string.find(string.sub(s, i, i), '^%s') do i = i - 1 end
  return i
end

-- The envelope's exact text inside an unacked entry `[<envelope>, "<exchange>", "<key>"]`.
-- Read from the end, over the two strings, so the envelope's bytes are kept as stored
-- (decoding and re-encoding it with cjson would change numbers and empty arrays).
local function envelope_of(entry)
  local i = skip_back(entry, #entry)
  if string.sub(entry, i, i) ~= ']' then return nil end
  for _ = 1, 2 do
    i = skip_back(entry, i - 1)
    if string.sub(entry, i, i) ~= '"' then return nil end
    local open = string_start(entry, i)
    if not open then return nil end
    i = skip_back(entry, open - 1)
    if string.sub(entry, i, i) ~= ',' then return nil end
  end
  local first = string.find(entry, '[^%s]', 2)
  local last = skip_back(entry, i - 1)
  if not first or string.sub(entry, first, first) ~= '{' or string.sub(entry, last, last) ~= '}' then
    return nil
  end
  return string.sub(entry, first, last)
end

-- Marks an envelope redelivered: `"redelivered": true` goes first into the last
-- "delivery_info" object (properties come last in kombu's and celeriac's envelopes).
-- Text is inserted rather than the JSON re-encoded, for the reason given above.
local function mark_redelivered(env)
  local brace, from = nil, 1
  while true do
    local _, e = string.find(env, '"delivery_info"%s*:%s*{', from)
    if not e then break end
    brace, from = e, e + 1
  end
  if not brace or string.find(env, '^%s*"redelivered"', brace + 1) then return env end
  local member = '"redelivered": true, '
  if string.find(env, '^%s*}', brace + 1) then member = '"redelivered": true' end
  return string.sub(env, 1, brace) .. member .. string.sub(env, brace + 1)
end

-- Splits "0,3,6,9" into numbers.
local function parse_steps(csv)
  local steps = {}
  for n in string.gmatch(csv, '[^,]+') do steps[#steps + 1] = tonumber(n) end
  return steps
end

-- kombu's rule: a priority (clamped to 0..9) goes to the largest step not above it;
-- below every step it wraps to the last one, as kombu's bisect does.
local function step_for(priority, steps)
  local p = math.max(0, math.min(9, math.floor(tonumber(priority) or 0)))
  local chosen = steps[#steps]
  for _, step in ipairs(steps) do
    if step <= p then chosen = step end
  end
  return chosen
end

-- The list key of a queue's priority step: the bare (prefixed) name for step 0.
local function list_key(prefix, queue, step, sep)
  if step == 0 then return prefix .. queue end
  return prefix .. queue .. sep .. string.format('%d', step)
end

-- The message priority stored in an envelope's properties (0 when absent or unreadable).
local function envelope_priority(env)
  local ok, decoded = pcall(cjson.decode, env)
  if ok and type(decoded) == 'table' and type(decoded.properties) == 'table' then
    local p = tonumber(decoded.properties.priority)
    if p then return p end
  end
  return 0
end

-- The queues a (exchange, routing key) pair reaches: the routing key itself for the
-- default exchange, else the exact matches in kombu's binding table of the exchange.
-- Patterns (topic/fanout) are not evaluated: they fall back to the routing key's queue.
local function queues_for(prefix, sep, exchange, routing_key)
  if exchange == nil or exchange == '' then return { routing_key } end
  local found = {}
  for _, member in ipairs(redis.call('SMEMBERS', prefix .. '_kombu.binding.' .. exchange)) do
    local a = string.find(member, sep, 1, true)
    local b = a and string.find(member, sep, a + #sep, true)
    if b and string.sub(member, 1, a - 1) == routing_key then
      found[#found + 1] = string.sub(member, b + #sep)
    end
  end
  if #found == 0 then found[1] = routing_key end
  return found
end

-- Gives a held message back to its queue(s), marked redelivered: to the head (`head`,
-- next to be taken, as kombu restores) or to the tail. Removes the holding records first,
-- so a second give-back of the same tag does nothing. An entry that cannot be read is
-- moved to the dead letters rather than dropped. Returns 1 if a message went back.
-- keys: unacked hash, unacked_index zset, leases zset, dead-letter stream.
local function give_back(keys, tag, head, prefix, sep, steps)
  local entry = redis.call('HGET', keys[1], tag)
  redis.call('HDEL', keys[1], tag)
  redis.call('ZREM', keys[2], tag)
  redis.call('ZREM', keys[3], tag)
  if not entry then return 0 end
  local env = envelope_of(entry)
  local ok, triple = pcall(cjson.decode, entry)
  if not env or not ok or type(triple) ~= 'table' or type(triple[3]) ~= 'string' then
    redis.call('XADD', keys[4], '*', 'queue', '', 'reason', 'unreadable held message',
      'time', tostring(server_now()), 'message', entry)
    return 0
  end
  local exchange = triple[2]
  if type(exchange) ~= 'string' then exchange = '' end
  local priority = 0
  if type(triple[1]) == 'table' and type(triple[1].properties) == 'table' then
    priority = tonumber(triple[1].properties.priority) or 0
  end
  local step = step_for(priority, steps)
  env = mark_redelivered(env)
  for _, queue in ipairs(queues_for(prefix, sep, exchange, triple[3])) do
    redis.call(head and 'RPUSH' or 'LPUSH', list_key(prefix, queue, step, sep), env)
  end
  return 1
end

-- priority.lua: exact priorities inside one of kombu's priority-step lists. Prepended to
-- claim.lua (see _load_scripts in redis.py). Touches only the list key it is given.
--
-- A step list holds several priorities (with the default steps, 0-2 share the step-0 list)
-- in publication order. take() hands out a list's messages lowest priority number first,
-- oldest first among equals, looking at most `window` messages deep for each one it takes;
-- the list keeps the layout Celery reads, only the order of removal changes.

-- How many messages a claim reads at a time below the first `want` when looking deeper.
local READ_CHUNK = 16

-- Where the member `"<name>"` ends in `env`, searching from `from` (nil if absent). Searches
-- for the name and its closing quote first: the opening quote is the commonest byte of JSON,
-- the name's first letter a rarer one to skip to.
local function member_end(env, name, from)
  while true do
    local s, e = string.find(env, name .. '"', from, true)
    if not s then return nil end
    if s > 1 and string.byte(env, s - 1) == 34 then return e end
    from = e + 1
  end
end

-- Position just after the last `"properties": {` of an envelope at or after `from`.
-- Properties are the last member of kombu's and celeriac's envelopes; a string value
-- "properties" (a queue of that name, say) is not followed by `: {` and is skipped.
local function properties_from(env, from)
  local found
  while true do
    local e = member_end(env, 'properties', from)
    if not e then return found end
    if string.find(env, '^%s*:%s*{', e + 1) then found = e + 1 end
    from = e + 1
  end
end

-- The priority in an envelope's properties, read from the text (no JSON decoding: this
-- runs for every message a claim takes). Looks in the last 512 bytes first, where the
-- properties are, then in the whole envelope. nil when absent or not a number.
local function listed_priority(env)
  local from = 1
  if #env > 512 then from = #env - 512 end
  local at = properties_from(env, from)
  if not at and from > 1 then at = properties_from(env, 1) end
  while at do
    local e = member_end(env, 'priority', at)
    if not e then return nil end
    local p = string.match(env, '^%s*:%s*(%-?%d+)', e + 1)
    if p then return tonumber(p) end
    at = e + 1
  end
  return nil
end

-- The rank of an envelope in a list holding priorities floor..ceil: its priority clamped
-- to that range; an unreadable one ranks first (kombu files those under priority 0).
local function rank(env, floor, ceil)
  local p = listed_priority(env)
  if not p then return floor end
  return math.max(floor, math.min(ceil, math.floor(p)))
end

-- Positions (1 = oldest) of the messages to take, in the order to hand them out: each is
-- the best of the `window` oldest still in the list once the earlier ones are taken.
-- `ranks` holds every message that window could reach (want + window - 1 at most).
local function pick(ranks, want, window)
  local queues, heads = {}, {}
  for r = 0, 9 do queues[r], heads[r] = {}, 1 end
  local seen = 0
  local function admit()
    seen = seen + 1
    local q = queues[ranks[seen]]
    q[#q + 1] = seen
  end
  while seen < math.min(window, #ranks) do admit() end
  local chosen = {}
  while #chosen < want and #chosen < #ranks do
    for r = 0, 9 do
      if heads[r] <= #queues[r] then
        chosen[#chosen + 1] = queues[r][heads[r]]
        heads[r] = heads[r] + 1
        break
      end
    end
    if seen < #ranks then admit() end
  end
  return chosen
end

-- Removes the chosen positions from the consuming end of `key`: the `deepest` oldest
-- messages are trimmed, and the ones not chosen among them pushed back in their order.
-- One trim and one push whatever the number chosen (an LREM per message would scan the
-- list again for each one).
local function remove_chosen(key, olds, chosen)
  local deepest, taken = 0, {}
  for _, at in ipairs(chosen) do
    taken[at] = true
    if at > deepest then deepest = at end
  end
  redis.call('LTRIM', key, 0, -deepest - 1)
  local back = {}
  for at = deepest, 1, -1 do
    if not taken[at] then back[#back + 1] = olds[at] end
  end
  if #back > 0 then redis.call('RPUSH', key, unpack(back)) end
end

-- Whether the messages read so far decide the pick: the first `want` at the list's best
-- priority are read, each within the window of its turn (the k-th at most window + k - 1
-- deep), so nothing deeper could be taken before them.
local function settled(ranks, floor, want, window)
  local k = 0
  for at = 1, #ranks do
    if ranks[at] == floor then
      k = k + 1
      if at > window + k - 1 then return false end
      if k == want then return true end
    end
  end
  return false
end

-- Appends the messages `from`..`to` deep (1 = oldest) to `olds` and their ranks to `ranks`;
-- returns whether the list had them all.
local function read_deeper(key, from, to, olds, ranks, floor, ceil)
  local got = redis.call('LRANGE', key, -to, -from)
  for i = #got, 1, -1 do
    olds[#olds + 1] = got[i]
    ranks[#ranks + 1] = rank(got[i], floor, ceil)
  end
  return #got == to - from + 1
end

-- Takes up to `want` messages from a step list holding priorities floor..ceil; returns
-- their envelopes in the order to hand them out. When the oldest `want` are all at the
-- list's best priority (the usual case, everything at 0) they are taken as they are.
-- Otherwise the list is read READ_CHUNK messages at a time, until the pick is settled or
-- the window's reach (want + window - 1 messages) is read.
local function take(key, floor, ceil, want, window)
  if floor == ceil then return redis.call('RPOP', key, want) or {} end
  local olds, ranks = {}, {}
  local full = read_deeper(key, 1, want, olds, ranks, floor, ceil)
  if #olds == 0 then return olds end
  if settled(ranks, floor, #olds, window) then
    redis.call('LTRIM', key, 0, -#olds - 1)
    return olds
  end
  local reach = want + window - 1
  while full and #olds < reach and not settled(ranks, floor, want, window) do
    local to = math.min(#olds + READ_CHUNK, reach)
    full = read_deeper(key, #olds + 1, to, olds, ranks, floor, ceil)
  end
  local chosen = pick(ranks, want, window)
  remove_chosen(key, olds, chosen)
  local out = {}
  for i, at in ipairs(chosen) do out[i] = olds[at] end
  return out
end

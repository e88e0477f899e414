-- Count one finished chord header part, Celery's way; hand back every part once all are in.
--
-- KEYS[1]  celery-taskset-meta-<group id>.j  the parts so far: a sorted set scored by the
--          part's index in the group (ordered mode, Celery's default) or a list (unordered)
-- KEYS[2]  celery-taskset-meta-<group id>.t  parts added after the chord started (a counter)
-- KEYS[3]  celery-taskset-meta-<group id>.s  the header size, set by the sending client
-- ARGV[1]  the part: the serialized [1, task_id, state, result]
-- ARGV[2]  the part's index in the group ("+inf" when unknown)
-- ARGV[3]  time to live of the three keys in milliseconds; "0" leaves them as they are
-- ARGV[4]  the header size to use when KEYS[3] is missing; "0" for none
-- ARGV[5]  "1" for ordered mode (ZADD), "0" for unordered mode (RPUSH)
--
-- Returns false while parts are missing. The call that brings the count to size + extra
-- returns every part (in index order in ordered mode) and deletes the three keys; being one
-- script, exactly one caller across all processes sees the complete list.

local ready
if ARGV[5] == '1' then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
    ready = redis.call('ZCARD', KEYS[1])
else
    ready = redis.call('RPUSH', KEYS[1], ARGV[1])
end
local extra = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local size = tonumber(redis.call('GET', KEYS[3]) or ARGV[4]) or 0
if ARGV[3] ~= '0' then
    for _, key in ipairs(KEYS) do
        redis.call('PEXPIRE', key, ARGV[3])
    end
end
if size <= 0 or ready ~= size + extra then
    return false
end
local parts
if ARGV[5] == '1' then
    parts = redis.call('ZRANGE', KEYS[1], 0, -1)
else
    parts = redis.call('LRANGE', KEYS[1], 0, -1)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return parts

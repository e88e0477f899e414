-- Store task results the way Celery's Redis backend does, never replacing a final state.
--
-- KEYS[i]         celery-task-meta-<task id> (with the global key prefix), one per record
-- ARGV[3i-2]      the record's state (SUCCESS, FAILURE, STARTED, ...)
-- ARGV[3i-1]      its time to live in milliseconds; "0" keeps it forever
-- ARGV[3i]        the serialized record (Celery's meta)
--
-- Reads each key's current value to learn its stored status, then SETs the key (with PX)
-- and PUBLISHes the value on the channel named like the key, as Celery's SETEX + PUBLISH
-- does. A stored SUCCESS is final; a stored FAILURE or REVOKED is replaced only by another
-- ready state (celeriac.backends.base.replaces). Records are handled in order, so a batch
-- may hold the same key twice. Returns how many records were written.

local READY = {SUCCESS = true, FAILURE = true, REVOKED = true}

-- The status of a pickled record: the first key of Celery's meta dict is 'status', so the
-- first 'status' string is followed (after an optional memo opcode) by the state string.
local function pickled_status(value)
    local _, last = string.find(value, 'status', 1, true)
    if not last then
        return false
    end
    local pos = last + 1
    local op = string.byte(value, pos)
    if op == 0x94 then          -- MEMOIZE
        pos = pos + 1
    elseif op == 0x71 then      -- BINPUT <1 byte>
        pos = pos + 2
    elseif op == 0x72 then      -- LONG_BINPUT <4 bytes>
        pos = pos + 5
    end
    op = string.byte(value, pos)
    local size
    if op == 0x8c then          -- SHORT_BINUNICODE <1-byte length>
        size = string.byte(value, pos + 1)
        pos = pos + 2
    elseif op == 0x58 then      -- BINUNICODE <4-byte little-endian length>
        local a, b, c, d = string.byte(value, pos + 1, pos + 4)
        if not d then
            return false
        end
        size = a + b * 256 + c * 65536 + d * 16777216
        pos = pos + 5
    else
        return false
    end
    if not size or size > 64 then
        return false
    end
    return string.sub(value, pos, pos + size - 1)
end

-- The status of a msgpack record: a map whose first key is 'status' (fixstr), else unpack.
local function msgpacked_status(value, first)
    local pos = 2
    if first == 0xde then
        pos = 4
    elseif first == 0xdf then
        pos = 6
    end
    if string.sub(value, pos, pos + 6) == '\166status' then
        local header = string.byte(value, pos + 7)
        if header and header >= 0xa0 and header <= 0xbf then
            return string.sub(value, pos + 8, pos + 7 + header - 0xa0)
        end
    end
    local ok, meta = pcall(cmsgpack.unpack, value)
    if ok and type(meta) == 'table' and type(meta.status) == 'string' then
        return meta.status
    end
    return false
end

-- The status of a stored record, or false when it cannot be told (it is then replaced).
local function stored_status(value)
    -- Celery and celeriac both write 'status' first: match it without decoding the value.
    local status = string.match(value, '^%s*{%s*"status"%s*:%s*"([%w_%-]*)"')
    if status then
        return status
    end
    local first = string.byte(value, 1)
    if first == 0x80 then
        return pickled_status(value)
    end
    if first and ((first >= 0x81 and first <= 0x8f) or first == 0xde or first == 0xdf) then
        return msgpacked_status(value, first)
    end
    if string.match(value, '^%s*{') then
        local ok, meta = pcall(cjson.decode, value)
        if ok and type(meta) == 'table' and type(meta.status) == 'string' then
            return meta.status
        end
    end
    return false
end

local function replaces(stored, new)
    if stored == 'SUCCESS' then
        return false
    end
    if READY[stored] then
        return READY[new] == true
    end
    return true
end

local written = 0
for i, key in ipairs(KEYS) do
    local state, ttl, value = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
    local current = redis.call('GET', key)
    if not current or replaces(stored_status(current), state) then
        if ttl == '0' then
            redis.call('SET', key, value)
        else
            redis.call('SET', key, value, 'PX', ttl)
        end
        redis.call('PUBLISH', key, value)
        written = written + 1
    end
end
return written

-- GCRA (a token bucket with continuous refill). State: base time in ms and backlog, packed as
-- two little-endian doubles (cheaper to write and read than text, and exact).
-- The backlog is the time until the bucket is full again, in units of 1/limit ms, so that
-- one unit of cost adds exactly `period` and every quantity is an integer.
local function check(key, limit, period, cap)
  local st = redis.call('GET', key)
  local cur = 0
  if st then
    if #st ~= 16 then
      error('key ' .. key .. ' holds no gcra state')
    end
    local b, x = struct.unpack('<dd', st)
    cur = math.max(x - (now - b) * limit, 0)
  end
  -- a negative cost gives back a reservation
  local new = math.max(cur + cost * period, 0)
  local full = cap * period
  -- giving back (cost <= 0) is always allowed, even while others' reservations are queued
  local ok = new <= full or cost <= 0
  local retry = 0
  if cost > cap then
    retry = -1
  elseif not ok then
    retry = ceildiv(new - full, limit)
  end
  return {ok, retry, math.max(floordiv(full - cur, period), 0), ceildiv(cur, limit),
    math.max(floordiv(full - new, period), 0), ceildiv(new, limit), new}
end

local function commit(key, c, ttl)
  redis.call('SET', key, struct.pack('<dd', now, c[7]), 'PX', ttl)
  return true
end

-- A slice of up to `cost` units, all that conform within max_wait ms: the process may spend
-- unit i from the moment it conforms until the backlog before it would have drained (so that
-- no unit is spent later than a plain hit could have been: see the twin's grant()).
local function grant(key, limit, period, cap)
  local st = redis.call('GET', key)
  local cur = 0
  if st then
    local b, x = struct.unpack('<dd', st)
    cur = math.max(x - (now - b) * limit, 0)
  end
  local k = floordiv(cap * period + max_wait * limit - cur, period)
  return math.max(math.min(k, cost), 0), now, cur
end

-- Gives back `cost` units of a slice granted at `a` on a backlog of `b` before it, only if no
-- decision was made on the key since (giving them back then would move units that others
-- hold): the key then still holds the slice's own state.
local function take_back(key, a, b, limit, period, cap)
  local st = redis.call('GET', key)
  if not st then
    return
  end
  local base, x = struct.unpack('<dd', st)
  if base ~= a or x ~= b then
    return
  end
  local new = math.max(x - cost * period, 0)
  local reset = ceildiv(math.max(new - (now - base) * limit, 0), limit)
  if reset > 0 then
    redis.call('SET', key, struct.pack('<dd', base, new), 'PX', reset + ttl_pad)
  else
    redis.call('DEL', key)
  end
end

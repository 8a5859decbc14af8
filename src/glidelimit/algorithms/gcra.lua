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

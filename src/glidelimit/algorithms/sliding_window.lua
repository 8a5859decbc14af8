-- Sliding window counter: the previous window's count weighted by how much of it still
-- overlaps the sliding period, plus the current window's count. Windows align to the epoch.
-- State: hash {w = window index, c = its count, p = the previous window's count}.
local function check(key, limit, period, cap)
  local st = redis.call('HMGET', key, 'w', 'c', 'p')
  local w = floordiv(now, period)
  local x = now - w * period
  local cur, prev = 0, 0
  local sw = tonumber(st[1])
  if sw == w then
    cur, prev = tonumber(st[2]), tonumber(st[3])
  elseif sw == w - 1 then
    prev = tonumber(st[2])
  end
  -- counts scaled by period, so that the weighting stays in integers
  local weighted = prev * (period - x) + cur * period
  local new = weighted + cost * period
  local c = {ok = new <= limit * period, w = w, cur = cur + cost, prev = prev}
  if cost > limit then
    c.retry = -1
  elseif c.ok then
    c.retry = 0
  elseif cur + cost <= limit then
    -- wait until the previous window's weight has shrunk enough
    c.retry = ceildiv(prev * (period - x) - (limit - cur - cost) * period, prev)
  else
    -- wait for the next window, then until this window's weight has shrunk enough
    c.retry = period - x + ceildiv((cur - limit + cost) * period, cur)
  end
  c.rem0 = floordiv(limit * period - weighted, period)
  c.rem1 = floordiv(limit * period - new, period)
  local function reset(n)
    if n > 0 then return 2 * period - x elseif prev > 0 then return period - x end
    return 0
  end
  c.reset0, c.reset1 = reset(cur), reset(cur + cost)
  return c
end

local function commit(key, c, ttl)
  redis.call('HSET', key, 'w', c.w, 'c', c.cur, 'p', c.prev)
end

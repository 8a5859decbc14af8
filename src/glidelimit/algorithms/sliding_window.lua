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
  local ok = new <= limit * period
  local retry
  if cost > limit then
    retry = -1
  elseif ok then
    retry = 0
  elseif cur + cost <= limit then
    -- wait until the previous window's weight has shrunk enough
    retry = ceildiv(prev * (period - x) - (limit - cur - cost) * period, prev)
  else
    -- wait for the next window, then until this window's weight has shrunk enough
    retry = period - x + ceildiv((cur - limit + cost) * period, cur)
  end
  local function reset(n)
    if n > 0 then return 2 * period - x elseif prev > 0 then return period - x end
    return 0
  end
  return {ok, retry, floordiv(limit * period - weighted, period), reset(cur),
    floordiv(limit * period - new, period), reset(cur + cost), w, cur + cost, prev}
end

local function commit(key, c, ttl)
  redis.call('HSET', key, 'w', c[7], 'c', c[8], 'p', c[9])
end

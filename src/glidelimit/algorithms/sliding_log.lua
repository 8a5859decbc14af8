-- Sliding log: one sorted-set member per hit, scored by its time in ms; a hit's units count
-- while it is younger than the period. Each member is the running total of units before and
-- after its hit, so that the live units are a difference of two members: a decision reads
-- O(log n) of the log and writes one member, whatever its cost. The totals are packed as
-- big-endian doubles, whose bytes sort as their values do: hits of one instant (one score)
-- keep their order too.
local function bounds(member)
  return struct.unpack('>dd', member)
end

local function check(key, limit, period, cap)
  local since = now - period -- members scored at or before this are dead
  local n = redis.call('ZCARD', key)
  local dead, count, total, last_at = 0, 0, 0, nil
  if n > 0 then
    local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    local _
    _, total = bounds(last[1])
    last_at = tonumber(last[2])
    dead = redis.call('ZCOUNT', key, '-inf', since)
    if dead < n then
      local start = bounds(redis.call('ZRANGE', key, dead, dead)[1])
      count = total - start
    end
  end
  local new = count + cost
  local ok = new <= limit
  local retry = 0
  if cost > limit then
    retry = -1
  elseif not ok then
    -- the first live hit whose end leaves room once it has aged out (ends grow with rank)
    local need = total - limit + cost
    local low, high = dead, n - 1
    while low < high do
      local mid = math.floor((low + high) / 2)
      local _, e = bounds(redis.call('ZRANGE', key, mid, mid)[1])
      if e >= need then high = mid else low = mid + 1 end
    end
    local at = redis.call('ZRANGE', key, low, low, 'WITHSCORES')[2]
    retry = tonumber(at) + period - now
  end
  local reset0 = 0
  if count > 0 then
    reset0 = last_at + period - now
  end
  local reset1 = reset0
  if cost > 0 then
    reset1 = period
  end
  return {ok, retry, limit - count, reset0, limit - new, reset1, {dead, total, last_at}}
end

local function commit(key, c, ttl)
  local dead, total, last_at = c[7][1], c[7][2], c[7][3]
  if dead > 0 then -- some of the dead, so that no decision removes more than 1000
    redis.call('ZREMRANGEBYRANK', key, 0, math.min(dead, 1000) - 1)
  end
  if cost > 0 then
    -- never before the last member, so that times grow with rank even if the clock steps back
    local at = now
    if last_at ~= nil and last_at > at then
      at = last_at
    end
    redis.call('ZADD', key, string.format('%d', at), struct.pack('>dd', total, total + cost))
  end
end

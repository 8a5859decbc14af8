-- Fixed window: the window opens at the key's first allowed hit and lasts one period.
-- State: hash {n = count, e = window end in ms}.
local function check(key, limit, period, cap)
  local st = redis.call('HMGET', key, 'n', 'e')
  local count, wend = 0, nil
  local e = tonumber(st[2])
  if e ~= nil and e > now then
    count, wend = tonumber(st[1]), e
  end
  local new = count + cost
  local ok = new <= limit
  local retry, reset0, reset1 = 0, 0, 0
  if cost > 0 then
    reset1 = period -- a hit opens a window of one period; a check of cost 0 opens none
  end
  if wend ~= nil then
    reset0, reset1 = wend - now, wend - now
  end
  if cost > limit then
    retry = -1
  elseif not ok then
    retry = reset0
  end
  return {ok, retry, limit - count, reset0, limit - new, reset1, wend}
end

local function commit(key, c, ttl)
  if c[7] == nil then -- a new window, of one period
    redis.call('HSET', key, 'n', cost, 'e', now + c[6])
  else
    redis.call('HINCRBY', key, 'n', cost)
  end
end

-- A slice of up to `cost` units, all that are free in the window now: the process may spend
-- them until the window ends.
local function grant(key, limit, period, cap)
  local st = redis.call('HMGET', key, 'n', 'e')
  local count, wend = 0, now + period
  local e = tonumber(st[2])
  if e ~= nil and e > now then
    count, wend = tonumber(st[1]), e
  end
  return math.max(math.min(limit - count, cost), 0), wend, count
end

-- Gives back `cost` units of a slice of the window ending at `a`, if it is still that window.
local function take_back(key, a, b, limit, period, cap)
  local st = redis.call('HMGET', key, 'n', 'e')
  if tonumber(st[2]) == a then
    redis.call('HSET', key, 'n', math.max(tonumber(st[1]) - cost, 0))
  end
end

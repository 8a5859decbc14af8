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
  local c = {ok = new <= limit, rem0 = limit - count, rem1 = limit - new, wend = wend}
  if cost > limit then
    c.retry = -1
  elseif c.ok then
    c.retry = 0
  else
    c.retry = wend - now
  end
  if wend == nil then
    c.reset0, c.reset1 = 0, period
  else
    c.reset0, c.reset1 = wend - now, wend - now
  end
  return c
end

local function commit(key, c, ttl)
  if c.wend == nil then
    redis.call('HSET', key, 'n', cost, 'e', now + c.reset1)
  else
    redis.call('HINCRBY', key, 'n', cost)
  end
end

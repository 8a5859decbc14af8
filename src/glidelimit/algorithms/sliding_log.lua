-- Sliding log: one sorted-set member per unit of cost, scored by its time in ms; a unit
-- counts while it is younger than the period. Exact, and O(limit) memory per key.
local function check(key, limit, period, cap)
  local since = '(' .. (now - period)
  local count = redis.call('ZCOUNT', key, since, '+inf')
  local new = count + cost
  local ok = new <= limit
  local retry = 0
  if cost > limit then
    retry = -1
  elseif not ok then
    -- wait until enough of the oldest live units have aged out
    local k = new - limit
    local e = redis.call('ZRANGEBYSCORE', key, since, '+inf', 'WITHSCORES', 'LIMIT', k - 1, 1)
    retry = tonumber(e[2]) + period - now
  end
  local reset0 = 0
  if count > 0 then
    local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    reset0 = tonumber(last[2]) + period - now
  end
  local reset1 = reset0
  if cost > 0 then
    reset1 = period
  end
  return {ok, retry, limit - count, reset0, limit - new, reset1, now - period}
end

local function commit(key, c, ttl)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', c[7]) -- the dead units
  -- Members must be unique: those of one instant are numbered on from how many that instant
  -- has, which is exact because the members of one instant only ever leave together (even if
  -- the server's clock steps back).
  local n = redis.call('ZCOUNT', key, now, now)
  local args = {}
  for i = 1, cost do
    args[#args + 1] = now
    args[#args + 1] = now .. ':' .. (n + i)
    if #args >= 1000 or i == cost then
      redis.call('ZADD', key, unpack(args))
      args = {}
    end
  end
end

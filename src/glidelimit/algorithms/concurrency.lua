-- Concurrency: who holds a slot, as a sorted set of holders scored by when their lease ends.
-- A holder that dies stops renewing, and its slot frees itself when the lease ends.
-- Follows _prelude.lua (no _driver.lua: one key, and its own modes). Its one entry is (slots,
-- lease in ms, slots). Modes: 0 acquire, 1 peek, 3 release, 4 renew.
-- Returns the drivers' shape: {allowed, ok, remaining, reset_ms, retry_ms}.
local function decide(first)
  local key, limit, lease = KEYS[first], entry(1)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now) -- the leases of holders that died
  local allowed = 0
  if mode == 3 then
    redis.call('ZREM', key, holder)
  elseif mode == 4 then
    if redis.call('ZSCORE', key, holder) then
      redis.call('ZADD', key, now + lease, holder)
      allowed = 1
    end
  else
    local held = redis.call('ZSCORE', key, holder)
    if held or (mode == 0 and redis.call('ZCARD', key) < limit) then
      if mode == 0 then
        redis.call('ZADD', key, now + lease, holder)
      end
      allowed = 1
    end
  end
  local n = redis.call('ZCARD', key)
  local reset, retry = 0, 0
  if n > 0 then
    local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    reset = tonumber(last[2]) - now
    redis.call('PEXPIRE', key, reset + ttl_pad)
    if allowed == 0 then
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      retry = tonumber(oldest[2]) - now -- at the latest, a slot frees when this lease ends
    end
  end
  return {allowed, allowed, math.max(limit - n, 0), reset, retry}
end

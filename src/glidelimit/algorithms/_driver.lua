-- glidelimit: decide() for every rate algorithm, on the keys KEYS[first..first+entries-1].
-- Checks every entry, then commits all of them or none (a denied hit consumes nothing).
-- check(key, limit, period, cap) returns what the Python twin's check() does, in its order:
-- {ok, retry_ms, remaining, reset_ms, remaining once spent, reset_ms once spent, then what
-- commit(key, c, ttl) needs}; a table with no names is the cheapest for Lua to make.
-- Returns {allowed, then per entry: ok, remaining, reset_after_ms, retry_after_ms (-1: never)}.
local function decide(first)
  local checks = {}
  local allowed = true
  for i = 1, entries do
    local c = check(KEYS[first + i - 1], entry(i))
    if mode == 2 then
      c[1] = c[2] >= 0 and (max_wait < 0 or c[2] <= max_wait)
    end
    checks[i] = c
    allowed = allowed and c[1]
  end

  local out = {allowed and 1 or 0}
  for i = 1, entries do
    local c, key = checks[i], KEYS[first + i - 1]
    local remaining, reset = c[3], c[4]
    if allowed then
      remaining, reset = c[5], c[6]
      if mode ~= 1 then
        -- The key lives exactly as long as its state matters: until the rate is back to full.
        if reset > 0 then
          -- commit() returns true when it has set the key's expiry itself
          if not commit(key, c, reset + ttl_pad) then
            redis.call('PEXPIRE', key, reset + ttl_pad)
          end
        else
          redis.call('DEL', key)
        end
      end
    end
    out[#out + 1] = c[1] and 1 or 0
    out[#out + 1] = remaining
    out[#out + 1] = reset
    out[#out + 1] = c[2]
  end
  return out
end

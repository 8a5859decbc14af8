-- glidelimit: decide() for every rate algorithm, on the keys KEYS[first..first+entries-1].
-- Checks every entry, then commits all of them or none (a denied hit consumes nothing).
-- check(key, limit, period, cap) returns what the Python twin's check() does, in its order:
-- {ok, retry_ms, remaining, reset_ms, remaining once spent, reset_ms once spent, then what
-- commit(key, c, ttl) needs}; a table with no names is the cheapest for Lua to make.
-- Returns {allowed, then per entry: ok, remaining, reset_after_ms, retry_after_ms (-1: never)}.
-- Modes 5 (lease) and 6 (give back) are lease() and give_back() below.
local lease, give_back

local function decide(first)
  if mode >= 5 then
    return mode == 5 and lease(first) or give_back(first)
  end
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

-- Mode 5: a slice of up to `cost` units for one process to spend by itself: as many as every
-- entry grants (grant(): free now, or for gcra within max_wait ms), taken as a hit of that
-- many. Returns {granted, then per entry: remaining, reset_ms, a, b}, where a and b are what
-- the process needs to spend them exactly (gcra: now, and the backlog before; fixed window:
-- the window's end, and its count before) and, with the number granted, to give the unused
-- ones back.
lease = function(first)
  local granted = cost
  local found = {}
  for i = 1, entries do
    local k, a, b = grant(KEYS[first + i - 1], entry(i))
    found[i] = {a, b}
    if k < granted then
      granted = k
    end
  end
  local out = {granted}
  cost = granted
  for i = 1, entries do
    local key = KEYS[first + i - 1]
    local c = check(key, entry(i))
    if granted > 0 then
      if c[6] > 0 then
        if not commit(key, c, c[6] + ttl_pad) then
          redis.call('PEXPIRE', key, c[6] + ttl_pad)
        end
      end
    end
    out[#out + 1] = c[5]
    out[#out + 1] = c[6]
    out[#out + 1] = found[i][1]
    out[#out + 1] = found[i][2]
  end
  return out
end

-- Mode 6: give back `cost` unused units of a slice, on each entry as take_back() allows; the
-- holder carries, per entry, the slice's a and b as lease() returned them (two doubles).
give_back = function(first)
  for i = 1, entries do
    local a, b = struct.unpack('<dd', holder, 16 * (i - 1) + 1)
    local limit, period, cap = entry(i)
    take_back(KEYS[first + i - 1], a, b, limit, period, cap)
  end
  return {1}
end

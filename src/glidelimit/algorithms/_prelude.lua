-- glidelimit: the head shared by every algorithm's script. The script sent to the server is
-- this file, the algorithm's own file, _driver.lua for a rate algorithm, then _main.lua.
--
-- One call runs one or more decisions (concurrent callers' decisions coalesced into one trip).
-- ARGV[i] is decision i, packed as little-endian doubles (cheaper to read than text): now in ms
-- (negative: the server's clock), cost, mode (0 hit, 1 peek, 2 reserve, 3 release, 4 renew),
-- max wait in ms for reserve (-1: no limit), the number of rates, then limit, period_ms and
-- capacity per rate; concurrency adds the holder's token after them, as text.
-- KEYS: decision i's keys (one per rate, all under one {hash tag}) follow decision i-1's.
-- Every number is an integer below 2^53, so Lua's doubles compute exactly what Python does.
local now, cost, mode, max_wait, rates, arg, ttl_pad
local server_now

-- Reads decision `a` into the variables above, which the algorithm's functions use.
local function parse(a)
  arg = a
  now, cost, mode, max_wait, rates = struct.unpack('<ddddd', a)
  ttl_pad = 0
  if now < 0 then
    if server_now == nil then -- one clock reading per call
      local t = redis.call('TIME')
      server_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    now = server_now
  else
    -- An explicit now is for tests: simulated time may run far slower than the real clock, so
    -- keys must outlive the simulated TTL (every algorithm also detects stale state by itself).
    ttl_pad = 86400000
  end
end

-- Rate i's limit, period in ms and capacity.
local function rate(i)
  local limit, period, cap = struct.unpack('<ddd', arg, 17 + 24 * i)
  return limit, period, cap
end

local function floordiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local function ceildiv(a, b)
  return -floordiv(-a, b)
end

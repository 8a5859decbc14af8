-- glidelimit: the head shared by every algorithm's script. The script sent to the server is
-- this file, the algorithm's own file, _driver.lua for a rate algorithm, then _main.lua.
--
-- One call runs one or more decisions (concurrent callers' decisions coalesced into one trip).
-- ARGV[1] holds them one after another (one argument: each costs the client to send), each
-- packed as little-endian doubles (cheaper to read than text): now in ms (negative: the
-- server's clock), cost, mode (0 hit, 1 peek, 2 reserve, 3 release, 4 renew), max wait in ms
-- for reserve (-1: no limit), the length of the token, the number of rates, then limit,
-- period_ms and capacity per rate; then the token (concurrency's slot holder), as text.
-- KEYS: decision i's keys (one per rate, all under one {hash tag}) follow decision i-1's.
-- Every number is an integer below 2^53, so Lua's doubles compute exactly what Python does.
local now, cost, mode, max_wait, rates, token, ttl_pad
local at = 1 -- where the decision being made starts in ARGV[1]
local server_now

-- Reads the decision at `at` into the variables above, which the algorithm's functions use;
-- returns where the next one starts.
local function parse()
  local token_length
  now, cost, mode, max_wait, token_length, rates = struct.unpack('<dddddd', ARGV[1], at)
  local token_at = at + 48 + 24 * rates
  token = token_length > 0 and string.sub(ARGV[1], token_at, token_at + token_length - 1) or ''
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
  return token_at + token_length
end

-- Rate i's limit, period in ms and capacity.
local function rate(i)
  local limit, period, cap = struct.unpack('<ddd', ARGV[1], at + 24 + 24 * i)
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

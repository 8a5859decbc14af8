-- glidelimit: the head shared by every script. The script sent to the server is this file,
-- the algorithm's own file, _driver.lua for a rate algorithm, then _main.lua.
--
-- One call runs one or more decisions (concurrent callers' decisions share a trip), packed one
-- after another in ARGV[1] as algorithms/_wire.py describes; parse() reads one of them.
-- KEYS: decision i's keys (one per entry, all under one {hash tag}) follow decision i-1's.
local now, cost, mode, max_wait, entries, holder, ttl_pad
local at = 1 -- where the decision being made starts in ARGV[1]
local server_now

-- Reads the decision at `at` into the variables above, which the algorithm's functions use;
-- returns where the next one starts.
local function parse()
  local holder_length
  now, cost, mode, max_wait, holder_length, entries = struct.unpack('<dddddd', ARGV[1], at)
  local holder_at = at + 48 + 24 * entries
  holder = holder_length > 0 and string.sub(ARGV[1], holder_at, holder_at + holder_length - 1)
    or ''
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
  return holder_at + holder_length
end

-- Entry i's limit, period in ms and capacity.
local function entry(i)
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

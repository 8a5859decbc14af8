-- glidelimit: the head shared by every algorithm's script. The script sent to the server is
-- this file, then the algorithm's own file (which defines check() and commit()), then _driver.lua.
--
-- KEYS: one key per rate, all under one {hash tag}.
-- ARGV[1]: space-separated integers (one argument is cheaper to send than many): now in ms
--       ("-" = read the server clock), cost, mode (0 hit, 1 peek, 2 reserve), max wait in ms
--       for reserve (-1: no limit), then limit, period_ms, capacity per rate.
-- Every number is an integer below 2^53, so Lua's doubles compute exactly what Python does.
local argv = {}
for word in string.gmatch(ARGV[1], '%S+') do
  argv[#argv + 1] = word
end
local now = tonumber(argv[1])
local ttl_pad = 0
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  -- An explicit now is for tests: simulated time may run far slower than the real clock, so
  -- keys must outlive the simulated TTL (every algorithm also detects stale state by itself).
  ttl_pad = 86400000
end
local cost = tonumber(argv[2])
local mode = tonumber(argv[3])
local max_wait = tonumber(argv[4])

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

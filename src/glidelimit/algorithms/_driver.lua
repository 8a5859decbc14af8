-- glidelimit: the tail shared by every algorithm's script. Checks every rate, then commits
-- all of them or none (a denied hit consumes nothing). Returns
-- {allowed, then per rate: ok, remaining, reset_after_ms, retry_after_ms (-1: never)}.
local checks = {}
local allowed = true
for i = 1, #KEYS do
  local a = 4 + 3 * (i - 1)
  local c = check(KEYS[i], tonumber(argv[a + 1]), tonumber(argv[a + 2]), tonumber(argv[a + 3]))
  if mode == 2 then
    c.ok = c.retry >= 0 and (max_wait < 0 or c.retry <= max_wait)
  end
  checks[i] = c
  allowed = allowed and c.ok
end

local out = {allowed and 1 or 0}
for i = 1, #KEYS do
  local c = checks[i]
  local remaining, reset = c.rem0, c.reset0
  if allowed then
    remaining, reset = c.rem1, c.reset1
    if mode ~= 1 then
      -- The key lives exactly as long as its state matters: until the rate is back to full.
      if reset > 0 then
        commit(KEYS[i], c)
        redis.call('PEXPIRE', KEYS[i], reset + ttl_pad)
      else
        redis.call('DEL', KEYS[i])
      end
    end
  end
  out[#out + 1] = c.ok and 1 or 0
  out[#out + 1] = remaining
  out[#out + 1] = reset
  out[#out + 1] = c.retry
end
return out

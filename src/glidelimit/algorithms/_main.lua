-- glidelimit: the tail of every script. Runs the decisions in order, each on its own keys,
-- and returns one entry per decision: its result, or, for a decision that failed (a key of
-- the wrong type, say), the error's text, so that one failure does not fail the others.
local results = {}
local first = 1
while at <= #ARGV[1] do
  local next_at = parse()
  local ok, out = pcall(decide, first)
  if ok then
    results[#results + 1] = out
  else
    results[#results + 1] = type(out) == 'table' and (out.err or tostring(out)) or tostring(out)
  end
  first = first + entries
  at = next_at
end
return results

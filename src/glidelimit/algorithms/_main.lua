-- glidelimit: the tail of every script. Runs the decisions in ARGV order, each on its own
-- keys, and returns one entry per decision: its result, or, for a decision that failed (a key
-- of the wrong type, say), the error's text, so that one failure does not fail the others.
local results = {}
local first = 1
for i = 1, #ARGV do
  parse(ARGV[i])
  local ok, out = pcall(decide, first)
  if ok then
    results[i] = out
  else
    results[i] = type(out) == 'table' and (out.err or tostring(out)) or tostring(out)
  end
  first = first + rates
end
return results

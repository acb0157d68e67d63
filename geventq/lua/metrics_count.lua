-- Add the endings of a batch of jobs to the deployment's job metrics (sent by a worker in
-- the same pipeline as the endings themselves: no round trip of its own). Counters only
-- grow, so a worker restart never takes anything back.
-- A function gets its own label while fewer than the cap have one; any other function
-- is counted as 'other', which bounds the number of series whatever jobs are enqueued.
-- KEYS: 1 functions set, 2 jobs hash, 3 durations hash
-- ARGV: 1 cap, then per (queue, function) group: queue, function, n, then n triples
--       (hash 'j' or 'd', field name, increment); an increment with a '.' is a float
local cap = tonumber(ARGV[1])
local i = 2
while i <= #ARGV do
  local queue, func, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if redis.call('SISMEMBER', KEYS[1], func) == 0 then
    if redis.call('SCARD', KEYS[1]) < cap then
      redis.call('SADD', KEYS[1], func)
    else
      func = 'other'
    end
  end
  for j = i + 3, i + 1 + 3 * n, 3 do
    local key = ARGV[j] == 'j' and KEYS[2] or KEYS[3]
    local field = cjson.encode({queue, func, ARGV[j + 1]})
    if string.find(ARGV[j + 2], '.', 1, true) then
      redis.call('HINCRBYFLOAT', key, field, ARGV[j + 2])
    else
      redis.call('HINCRBY', key, field, ARGV[j + 2])
    end
  end
  i = i + 3 + 3 * n
end
return 1

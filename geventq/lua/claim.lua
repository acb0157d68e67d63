-- Claim up to ARGV[2] jobs from the queues in priority order. Each claimed id moves,
-- in this one step, from its queue into the queue's started registry and the
-- worker's in-flight set: at no instant is it in neither.
-- KEYS: per queue i (ARGV[1] of them): queue, started registry, expiring, wake; then
--       the worker's in-flight set
-- ARGV: 1 number of queues, 2 how many to claim, 3 now
-- Returns a flat list: queue index (0-based), job id, queue index, job id, ...
local n, want, now = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local in_flight = KEYS[4 * n + 1]
local claimed = {}
for i = 0, n - 1 do
  local queue, started, expiring, wake = KEYS[4 * i + 1], KEYS[4 * i + 2], KEYS[4 * i + 3], KEYS[4 * i + 4]
  local expired = redis.call('ZRANGEBYSCORE', expiring, '-inf', now)
  if #expired > 0 then
    for _, id in ipairs(expired) do
      redis.call('LREM', queue, 0, id)
    end
    redis.call('ZREM', expiring, unpack(expired))
  end
  if want > 0 then
    local ids = redis.call('LPOP', queue, want)
    if ids then
      for _, id in ipairs(ids) do
        redis.call('ZADD', started, now, id)
        redis.call('SADD', in_flight, id)
        claimed[#claimed + 1] = i
        claimed[#claimed + 1] = id
      end
      redis.call('ZREM', expiring, unpack(ids))
      want = want - #ids
    end
  end
  -- keep the wake token true for every queue, claimed from or not
  if redis.call('LLEN', queue) > 0 then
    if redis.call('LLEN', wake) == 0 then
      redis.call('RPUSH', wake, '1')
    end
  else
    redis.call('DEL', wake)
  end
end
return claimed

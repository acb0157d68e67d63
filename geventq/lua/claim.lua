-- Claim up to ARGV[2] jobs from the queues in priority order. Each claimed id moves,
-- in this one step, from its queue into the queue's started registry and the
-- worker's in-flight set: at no instant is it in neither.
-- KEYS: per queue i (ARGV[1] of them): queue, started registry, expiring, wake; then
--       the worker's in-flight set
-- ARGV: 1 number of queues, 2 how many to claim, 3 now, 4 how many to peek at (optional)
-- Returns two flat lists of queue index (0-based), job id, queue index, job id, ...:
-- the claimed jobs, and the next ARGV[4] ids the queues hold after the claim, in the
-- order a claim would take them (read only: the worker sends their guarded start along
-- with its next claim, so that claim costs one round trip instead of two).
local n, want, now = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local peek = tonumber(ARGV[4] or '0')
local peeked = {}
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
      -- many members per command (unpack() takes a few thousand values at most)
      for s = 1, #ids, 1000 do
        local e = math.min(s + 999, #ids)
        local scored = {}
        for j = s, e do
          scored[#scored + 1] = now
          scored[#scored + 1] = ids[j]
          claimed[#claimed + 1] = i
          claimed[#claimed + 1] = ids[j]
        end
        redis.call('ZADD', started, unpack(scored))
        redis.call('SADD', in_flight, unpack(ids, s, e))
        redis.call('ZREM', expiring, unpack(ids, s, e))
      end
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
  local room = peek - #peeked / 2
  if room > 0 then
    for _, id in ipairs(redis.call('LRANGE', queue, 0, room - 1)) do
      peeked[#peeked + 1] = i
      peeked[#peeked + 1] = id
    end
  end
end
return {claimed, peeked}

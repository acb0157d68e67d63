-- End a started job: finished (with its result), failed or stopped (with exc_info).
-- Releases its dependents in the same step, so each is enqueued exactly once.
-- KEYS: 1 job, 2 started registry, 3 worker in-flight set, 4 target registry
--       (finished or failed), 5 dependents set, 6 queues set, 7 waiters, 8 done,
--       then 5 keys per dependent (see release_children)
-- ARGV: 1 id, 2 now, 3 outcome, 4 ttl, 5 payload field, 6 payload, 7 n dependents,
--       8 n extra fields, then 2 per dependent (id, queue name), then extra field pairs
local job_id, now, outcome = ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[4])
local n = tonumber(ARGV[7])
local n_extra = tonumber(ARGV[8])
if not dependents_match(KEYS[5], 9, n) then
  return {'dependents', redis.call('SMEMBERS', KEYS[5])}
end
redis.call('ZREM', KEYS[2], job_id)
redis.call('SREM', KEYS[3], job_id)
-- a job deleted while it ran stays deleted
if redis.call('EXISTS', KEYS[1]) == 1 then
  if outcome == 'finished' and ttl == 0 then
    redis.call('DEL', KEYS[1])
  else
    redis.call('HSET', KEYS[1], 'status', outcome, 'ended_at', now, ARGV[5], ARGV[6])
    local e = 9 + 2 * n
    for i = 0, n_extra - 1 do
      redis.call('HSET', KEYS[1], ARGV[e + 2 * i], ARGV[e + 2 * i + 1])
    end
    if ttl == -1 then
      redis.call('PERSIST', KEYS[1])
      redis.call('ZADD', KEYS[4], '+inf', job_id)
    else
      redis.call('EXPIRE', KEYS[1], ttl)
      redis.call('ZADD', KEYS[4], now + ttl, job_id)
    end
  end
end
local released = release_children(9, 9, n, job_id, outcome == 'finished', now, KEYS[6])
if outcome == 'finished' then
  redis.call('DEL', KEYS[5])
elseif #released > 0 then
  redis.call('SREM', KEYS[5], unpack(released))
end
notify_waiters(KEYS[7], KEYS[8])
return {'ok'}

-- End a started job: finished (with its result), failed or stopped (with exc_info).
-- Releases its dependents in the same step, so each is enqueued exactly once.
-- A failed job with retry= keeps every try's exc_info (exc_history) and, while it has
-- retries left, is not failed: in this same step it goes back to its queue (delay 0)
-- or into its scheduled registry (due at now + delay), and its dependents wait on.
-- KEYS: 1 job, 2 started registry, 3 worker in-flight set, 4 target registry
--       (finished or failed), 5 dependents set, 6 queues set, 7 waiters, 8 done,
--       then 5 keys per dependent (see release_children),
--       then, for a failed job with retry=: its queue, wake, scheduled registry
-- ARGV: 1 id, 2 now, 3 outcome, 4 ttl, 5 payload field, 6 payload, 7 n dependents,
--       8 n extra fields, then 2 per dependent (id, queue name), then extra field pairs,
--       then, for a failed job with retry=: retry delay (seconds), queue name
local job_id, now, outcome = ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[4])
local n = tonumber(ARGV[7])
local n_extra = tonumber(ARGV[8])
local e = 9 + 2 * n
local retry_delay = tonumber(ARGV[e + 2 * n_extra] or '')
if not dependents_match(KEYS[5], 9, n) then
  return {'dependents', redis.call('SMEMBERS', KEYS[5])}
end
redis.call('ZREM', KEYS[2], job_id)
redis.call('SREM', KEYS[3], job_id)
-- a job deleted while it ran stays deleted
if redis.call('EXISTS', KEYS[1]) == 1 then
  if retry_delay and outcome == 'failed' then
    local history = redis.call('HGET', KEYS[1], 'exc_history')
    history = history and cjson.decode(history) or {}
    history[#history + 1] = ARGV[6]
    redis.call('HSET', KEYS[1], 'exc_history', cjson.encode(history))
    if tonumber(redis.call('HGET', KEYS[1], 'retries_left') or '0') > 0 then
      redis.call('HINCRBY', KEYS[1], 'retries_left', -1)
      redis.call('HSET', KEYS[1], ARGV[5], ARGV[6])
      for i = 0, n_extra - 1 do
        redis.call('HSET', KEYS[1], ARGV[e + 2 * i], ARGV[e + 2 * i + 1])
      end
      local k = 9 + 5 * n
      if retry_delay > 0 then
        redis.call('HSET', KEYS[1], 'status', 'scheduled')
        redis.call('ZADD', KEYS[k + 2], now + retry_delay, job_id)
        return {'scheduled'}
      end
      redis.call('HSET', KEYS[1], 'status', 'queued', 'enqueued_at', now)
      push_job(KEYS[k], KEYS[k + 1], KEYS[6], ARGV[e + 2 * n_extra + 1], job_id, false)
      return {'queued'}
    end
  end
  if outcome == 'finished' and ttl == 0 then
    redis.call('DEL', KEYS[1])
  else
    redis.call('HSET', KEYS[1], 'status', outcome, 'ended_at', now, ARGV[5], ARGV[6])
    for i = 0, n_extra - 1 do
      redis.call('HSET', KEYS[1], ARGV[e + 2 * i], ARGV[e + 2 * i + 1])
    end
    keep_ended(KEYS[1], KEYS[4], job_id, now, ttl)
  end
end
local released = release_children(9, 9, n, job_id, outcome == 'finished', now, KEYS[6])
if outcome == 'finished' then
  redis.call('DEL', KEYS[5])
else
  for s = 1, #released, 1000 do  -- unpack() takes a few thousand values at most
    redis.call('SREM', KEYS[5], unpack(released, s, math.min(s + 999, #released)))
  end
end
notify_waiters(KEYS[7], KEYS[8])
return {'ok'}

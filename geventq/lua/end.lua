-- End a started job: finished (with its result), failed or stopped (with exc_info).
-- Only the worker that holds the job ends it: an id no longer in its in-flight set
-- (canceled, or recovered by another worker meanwhile) is left alone, so a replayed
-- ending changes nothing. A job it holds whose status is no longer 'started' (canceled
-- or deleted while it ran) only leaves the worker's hands: its status stands.
-- Releases its dependents in the same step, so each is enqueued exactly once.
-- A failed job with retry= keeps every try's exc_info (exc_history) and, while it has
-- retries left, is not failed: in this same step it goes back to its queue (delay 0)
-- or into its scheduled registry (due at now + delay), and its dependents wait on.
-- Everything that can fail (reads of keys a hostile writer may have replaced) is done
-- before the first write: a call that fails has changed nothing.
-- A job of a limit key gives its slot back here (_limits.lua). outcome 'rate_limited'
-- (the job raised RateLimited; ARGV[6] is its retry_after): not ended, not failed, no
-- retry spent: it goes to its scheduled registry, due then, and its key is held until
-- then (no job of the key starts before).
-- KEYS: 1 job, 2 started registry, 3 worker in-flight set, 4 target registry
--       (finished or failed), 5 dependents set, 6 queues set, 7 waiters, 8 done,
--       then 7 keys per dependent (see release_children),
--       then, for a failed job with retry=: its queue, wake, scheduled registry,
--       and last (always) the job's events stream
-- ARGV: 1 id, 2 now, 3 outcome, 4 ttl, 5 payload field, 6 payload, 7 n dependents,
--       8 n extra fields, then 2 per dependent (id, queue name), then extra field pairs,
--       then, for a failed job with retry=: retry delay (seconds), queue name
local job_id, now, outcome = ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[4])
local n = tonumber(ARGV[7])
local n_extra = tonumber(ARGV[8])
local e = 9 + 2 * n
local retry_delay = tonumber(ARGV[e + 2 * n_extra] or '')
if redis.call('SISMEMBER', KEYS[3], job_id) == 0 then
  return {'gone'}
end
if not dependents_match(KEYS[5], 9, n) then
  return {'dependents', redis.call('SMEMBERS', KEYS[5])}
end
local started = redis.call('HGET', KEYS[1], 'status') == 'started'
local limit_name = redis.pcall('HGET', KEYS[1], 'limit')
local prefix = limit_prefix(KEYS[1], 'job:' .. job_id)
redis.call('ZREM', KEYS[2], job_id)
redis.call('SREM', KEYS[3], job_id)
if started and outcome == 'rate_limited' then
  local until_at = tonumber(now) + math.max(tonumber(ARGV[6]) or 1, 0)
  limit_hold(prefix, limit_name, until_at, tonumber(now))
  limit_release(prefix, limit_name, job_id)
  for i = 0, n_extra - 1 do
    redis.call('HSET', KEYS[1], ARGV[e + 2 * i], ARGV[e + 2 * i + 1])
  end
  local queue_name = string.sub(KEYS[2], #prefix + #'started:' + 1)
  redis.call('HSET', KEYS[1], 'status', 'scheduled')
  redis.call('HDEL', KEYS[1], 'started_at', 'worker_name')
  redis.call('ZADD', prefix .. 'scheduled:' .. queue_name, until_at, job_id)
  redis.call('SADD', KEYS[6], queue_name)
  return {'scheduled'}
end
limit_release(prefix, limit_name, job_id)
if not started then
  notify_waiters(KEYS[7], KEYS[8])
  return {'gone'}
end
if retry_delay and outcome == 'failed' then
  append_exc_history(KEYS[1], ARGV[6])
  local left = tonumber(redis.call('HGET', KEYS[1], 'retries_left') or '') or 0
  if left > 0 then
    redis.call('HSET', KEYS[1], 'retries_left', left - 1, ARGV[5], ARGV[6],
      unpack(ARGV, e, e + 2 * n_extra - 1))
    local k = 9 + CHILD_KEYS * n
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
local score = write_ended(KEYS[1], outcome, now, ttl, ARGV[5], ARGV[6], e, n_extra)
if score then
  redis.call('ZADD', KEYS[4], score, job_id)
end
end_dependents(KEYS[5], 9, 9, n, job_id, outcome == 'finished', now, KEYS[6])
notify_waiters(KEYS[7], KEYS[8])
add_end_event(KEYS[#KEYS], outcome, now)
return {'ok'}

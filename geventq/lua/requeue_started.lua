-- Put a started job back on its queue (cold shutdown, dead worker); past the allowed
-- number of such requeues, fail it with the given reason instead (a job with retry=
-- first spends its retries, each putting it back once more). A job failed here releases
-- its dependents that allow failure, as any ending does.
-- Everything that can fail is read before the first write: a failed call changed nothing.
-- A job of a limit key gives its slot back (_limits.lua), whichever way it goes.
-- KEYS: 1 job, 2 started registry, 3 owner's in-flight set, 4 queue, 5 wake, 6 queues set,
--       7 failed registry, 8 waiters, 9 done, 10 dependents set,
--       then 7 keys per dependent (see release_children)
-- ARGV: 1 id, 2 queue name, 3 now, 4 max requeues, 5 failure ttl, 6 reason,
--       7 n dependents, then 2 per dependent (id, queue name)
-- Returns {'queued'}, {'failed'}, why nothing was done ({'gone'}, {'missing'},
-- {'not-started'}), or, when the job fails and the caller's dependents are stale
-- (nothing written), {'dependents', ids}.
local job_id, queue_name, now = ARGV[1], ARGV[2], ARGV[3]
local max_requeues, failure_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = tonumber(ARGV[7])
-- only the owner's in-flight set says the job is still that owner's: once another recoverer
-- has put it back, it may already be claimed (and in the started registry) again elsewhere
if redis.call('SISMEMBER', KEYS[3], job_id) == 0 then
  return {'gone'}
end
local status = redis.call('HGET', KEYS[1], 'status')
local limit_name = redis.pcall('HGET', KEYS[1], 'limit')
local prefix = limit_prefix(KEYS[1], 'job:' .. job_id)
if status ~= 'started' then
  redis.call('SREM', KEYS[3], job_id)
  redis.call('ZREM', KEYS[2], job_id)
  limit_release(prefix, limit_name, job_id)
  if status == 'queued' then
    -- claimed, but its worker died before starting it: it never ran, so no requeue is counted
    push_job(KEYS[4], KEYS[5], KEYS[6], queue_name, job_id, true)
    return {'queued'}
  end
  return {status and 'not-started' or 'missing'}
end
local count = (tonumber(redis.call('HGET', KEYS[1], 'requeues') or '') or 0) + 1
local has_retry = redis.call('HEXISTS', KEYS[1], 'retries_left') == 1
local retries_left = tonumber(redis.call('HGET', KEYS[1], 'retries_left') or '') or 0
local fails = count > max_requeues and not (has_retry and retries_left > 0)
if fails and not dependents_match(KEYS[10], 8, n) then
  return {'dependents', redis.call('SMEMBERS', KEYS[10])}
end
redis.call('SREM', KEYS[3], job_id)
redis.call('ZREM', KEYS[2], job_id)
limit_release(prefix, limit_name, job_id)
redis.call('HSET', KEYS[1], 'requeues', count)
-- past the allowed requeues, a job with retry= records the reason in its exc_history and
-- spends one of its retries instead of failing
if count > max_requeues and has_retry then
  append_exc_history(KEYS[1], ARGV[6])
  if retries_left > 0 then
    redis.call('HSET', KEYS[1], 'retries_left', retries_left - 1, 'exc_info', ARGV[6])
  end
end
if fails then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'ended_at', now, 'exc_info', ARGV[6])
  keep_ended(KEYS[1], KEYS[7], job_id, now, failure_ttl)
  end_dependents(KEYS[10], 11, 8, n, job_id, false, now, KEYS[6])
  notify_waiters(KEYS[8], KEYS[9])
  return {'failed'}
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'enqueued_at', now)
redis.call('HDEL', KEYS[1], 'started_at', 'worker_name')
push_job(KEYS[4], KEYS[5], KEYS[6], queue_name, job_id, true)
return {'queued'}

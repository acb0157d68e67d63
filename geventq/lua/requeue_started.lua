-- Put a started job back on its queue (cold shutdown, dead worker); past the allowed
-- number of such requeues, fail it with the given reason instead (a job with retry=
-- first spends its retries, each putting it back once more).
-- KEYS: 1 job, 2 started registry, 3 owner's in-flight set, 4 queue, 5 wake, 6 queues set,
--       7 failed registry, 8 waiters, 9 done
-- ARGV: 1 id, 2 queue name, 3 now, 4 max requeues, 5 failure ttl, 6 reason
local job_id, queue_name, now = ARGV[1], ARGV[2], ARGV[3]
local max_requeues, failure_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
-- only the owner's in-flight set says the job is still that owner's: once another recoverer
-- has put it back, it may already be claimed (and in the started registry) again elsewhere
if redis.call('SREM', KEYS[3], job_id) == 0 then
  return {'gone'}
end
redis.call('ZREM', KEYS[2], job_id)
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing'}
end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' then
  -- claimed, but its worker died before starting it: it never ran, so no requeue is counted
  push_job(KEYS[4], KEYS[5], KEYS[6], queue_name, job_id, true)
  return {'queued'}
end
if status ~= 'started' then
  return {'not-started'}
end
local count = redis.call('HINCRBY', KEYS[1], 'requeues', 1)
-- past the allowed requeues, a job with retry= records the reason in its exc_history and
-- spends one of its retries instead of failing
if count > max_requeues and redis.call('HEXISTS', KEYS[1], 'retries_left') == 1 then
  local history = redis.call('HGET', KEYS[1], 'exc_history')
  history = history and cjson.decode(history) or {}
  history[#history + 1] = ARGV[6]
  redis.call('HSET', KEYS[1], 'exc_history', cjson.encode(history))
  if tonumber(redis.call('HGET', KEYS[1], 'retries_left')) > 0 then
    redis.call('HINCRBY', KEYS[1], 'retries_left', -1)
    redis.call('HSET', KEYS[1], 'exc_info', ARGV[6])
    count = 0
  end
end
if count > max_requeues then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'ended_at', now, 'exc_info', ARGV[6])
  keep_ended(KEYS[1], KEYS[7], job_id, now, failure_ttl)
  notify_waiters(KEYS[8], KEYS[9])
  return {'failed'}
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'enqueued_at', now)
redis.call('HDEL', KEYS[1], 'started_at', 'worker_name')
push_job(KEYS[4], KEYS[5], KEYS[6], queue_name, job_id, true)
return {'queued'}

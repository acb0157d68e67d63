-- Put a failed, stopped or canceled job back on its queue.
-- KEYS: 1 job, 2 failed registry, 3 canceled registry, 4 queue, 5 wake, 6 queues set
-- ARGV: 1 id, 2 queue name, 3 now, 4 at_front
local job_id = ARGV[1]
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'missing'}
end
if status ~= 'failed' and status ~= 'stopped' and status ~= 'canceled' then
  return {'status', status}
end
redis.call('ZREM', KEYS[2], job_id)
redis.call('ZREM', KEYS[3], job_id)
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[1], 'status', 'queued', 'enqueued_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'ended_at', 'started_at', 'worker_name', 'requeues')
push_job(KEYS[4], KEYS[5], KEYS[6], ARGV[2], job_id, ARGV[4] == '1')
return {'queued'}

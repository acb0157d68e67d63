-- Cancel a queued, deferred or scheduled job: it will never run.
-- KEYS: 1 job, 2 queue, 3 deferred registry, 4 scheduled registry, 5 canceled registry,
--       6 expiring, 7 waiters, 8 done
-- ARGV: 1 id, 2 now, 3 ttl the canceled job is kept
local job_id, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'missing'}
end
if status ~= 'queued' and status ~= 'deferred' and status ~= 'scheduled' then
  return {'status', status}
end
redis.call('LREM', KEYS[2], 0, job_id)
redis.call('ZREM', KEYS[3], job_id)
redis.call('ZREM', KEYS[4], job_id)
redis.call('ZREM', KEYS[6], job_id)
redis.call('HSET', KEYS[1], 'status', 'canceled', 'ended_at', now)
keep_ended(KEYS[1], KEYS[5], job_id, now, ttl)
notify_waiters(KEYS[7], KEYS[8])
return {'canceled'}

-- Cancel a job that has not ended: queued (claimed or not), deferred, scheduled or
-- started. It never runs; a started one leaves its worker's hands here (the worker's
-- ending of it changes nothing, see end.lua) and its worker is asked to stop it. Its
-- dependents that allow failure are released, as for any ending.
-- A job of a limit key gives back the slot it held, claimed or started (_limits.lua).
-- KEYS: 1 job, 2 queue, 3 deferred registry, 4 scheduled registry, 5 canceled registry,
--       6 expiring, 7 waiters, 8 done, 9 started registry, 10 in-flight set of the
--       worker named in ARGV[4] (any key when none), 11 own pending set, 12 dependents
--       set, 13 queues set, then 7 keys per dependent (see release_children)
-- ARGV: 1 id, 2 now, 3 ttl the canceled job is kept, 4 worker the caller found running
--       it ('' = none), 5 stop channel, 6 n dependents, then 2 per dependent (id, queue)
-- Returns {'canceled'}, {'missing'}, {'status', status} (ended already), or, when the
-- caller's view is stale (nothing written): {'worker', name} or {'dependents', ids}.
local job_id, now, ttl, worker = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local n = tonumber(ARGV[6])
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'missing'}
end
if not is_live(status) then
  return {'status', status}
end
if status == 'started' then
  local running_on = redis.call('HGET', KEYS[1], 'worker_name') or ''
  if running_on ~= worker then
    return {'worker', running_on}
  end
end
if not dependents_match(KEYS[12], 7, n) then
  return {'dependents', redis.call('SMEMBERS', KEYS[12])}
end
if status == 'queued' then
  redis.call('LREM', KEYS[2], 0, job_id)
end
redis.call('ZREM', KEYS[3], job_id)
redis.call('ZREM', KEYS[4], job_id)
redis.call('ZREM', KEYS[6], job_id)
-- claimed but not started: its worker drops it at start (start.lua)
redis.call('ZREM', KEYS[9], job_id)
limit_release(limit_prefix(KEYS[1], 'job:' .. job_id), redis.pcall('HGET', KEYS[1], 'limit'),
  job_id)
if status == 'started' and worker ~= '' then
  redis.call('SREM', KEYS[10], job_id)
end
redis.call('DEL', KEYS[11])
redis.call('HSET', KEYS[1], 'status', 'canceled', 'ended_at', now)
keep_ended(KEYS[1], KEYS[5], job_id, now, ttl)
end_dependents(KEYS[12], 14, 7, n, job_id, false, now, KEYS[13])
notify_waiters(KEYS[7], KEYS[8])
if status == 'started' then
  redis.call('PUBLISH', ARGV[5], job_id)
end
return {'canceled'}

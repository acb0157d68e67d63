-- Start a job that runs in the calling process (Queue(is_async=False)), as a claim and
-- start would for a worker, so that end.lua ends it like any other job: retry=,
-- dependents, waiters and the events stream included. The caller is the "runner": its
-- in-flight set holds the job until end.lua takes it out.
-- KEYS: 1 job, 2 started registry, 3 runner in-flight set, 4 queue
-- ARGV: 1 id, 2 started at, 3 runner name, 4 'new' (hash field/value pairs follow: the
--       job's hash is written, unless the id is taken by a live job) or 'again' (a retry
--       end.lua put back on the queue: taken back from it, unless a worker took it)
local job_id, now, runner = ARGV[1], ARGV[2], ARGV[3]
if ARGV[4] == 'again' then
  if redis.call('LREM', KEYS[4], 1, job_id) == 0 then
    return {'gone'}
  end
else
  local live = clear_for_new_job(KEYS[1])
  if live then
    return {'duplicate', live}
  end
  -- bounded: the fields of one job's hash (Job.to_mapping: a few dozen values)
  redis.call('HSET', KEYS[1], 'enqueued_at', now, unpack(ARGV, 5))
end
redis.call('HSET', KEYS[1], 'status', 'started', 'started_at', now, 'worker_name', runner)
redis.call('ZADD', KEYS[2], now, job_id)
redis.call('SADD', KEYS[3], job_id)
return {'started'}

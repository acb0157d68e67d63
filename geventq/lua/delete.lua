-- Delete a job and every trace of it in its queue and registries.
-- KEYS: 1 job, 2 queue, 3 expiring, 4 pending set, 5 dependents set, then its queue's
--       registries, then the dependents sets of its dependencies
-- ARGV: 1 id, 2 number of registries
local job_id = ARGV[1]
local n_registries = tonumber(ARGV[2])
redis.call('LREM', KEYS[2], 0, job_id)
redis.call('ZREM', KEYS[3], job_id)
for i = 6, 5 + n_registries do
  redis.call('ZREM', KEYS[i], job_id)
end
for i = 6 + n_registries, #KEYS do
  redis.call('SREM', KEYS[i], job_id)
end
return redis.call('DEL', KEYS[1], KEYS[4], KEYS[5])

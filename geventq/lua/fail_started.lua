-- The last resort for a started job that no other script can end (its hash, or a key
-- next to it, holds what they refuse): take it out of its worker's hands and mark it
-- failed with the reason, in one step. Each write is a pcall, so one that fails on a key
-- of the wrong type does not stop the others. Its dependents are not released (their
-- set is what may be broken); Job.wait() callers are woken.
-- KEYS: 1 in-flight set of its worker, 2 started registry, 3 job, 4 failed registry,
--       5 waiters, 6 done
-- ARGV: 1 id, 2 now, 3 reason, 4 seconds the failed job is kept
local job_id, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[4])
redis.pcall('SREM', KEYS[1], job_id)
redis.pcall('ZREM', KEYS[2], job_id)
redis.pcall('HSET', KEYS[3], 'status', 'failed', 'ended_at', now, 'exc_info', ARGV[3])
redis.pcall('EXPIRE', KEYS[3], ttl)
redis.pcall('ZADD', KEYS[4], now + ttl, job_id)
notify_waiters(KEYS[5], KEYS[6])  -- reads with pcall: a bad counter wakes no one
-- a job of a limit key gives its slot back (_limits.lua); a broken limit key stops nothing
pcall(limit_release, limit_prefix(KEYS[3], 'job:' .. job_id), redis.pcall('HGET', KEYS[3], 'limit'),
  job_id)
return 'failed'

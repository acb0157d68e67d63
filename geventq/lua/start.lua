-- Mark claimed jobs started and return their hashes. A claimed id whose hash expired
-- (its ttl ran out in the queue) is dropped from the registries and answered with 0.
-- KEYS: 1 worker in-flight set, then per job: its hash, its queue's started registry
-- ARGV: 1 now, 2 worker name, 3.. job ids
local now, worker = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local k = 2 * (i - 3) + 2
  local job_key, started = KEYS[k], KEYS[k + 1]
  if redis.call('EXISTS', job_key) == 1 then
    redis.call('HSET', job_key, 'status', 'started', 'started_at', now, 'worker_name', worker)
    redis.call('PERSIST', job_key)
    out[#out + 1] = redis.call('HGETALL', job_key)
  else
    redis.call('ZREM', started, id)
    redis.call('SREM', KEYS[1], id)
    out[#out + 1] = 0
  end
end
return out

-- Mark claimed jobs started and return their hashes. A claimed id whose hash expired
-- (its ttl ran out in the queue) is dropped from the registries and answered with 0.
-- With ARGV[3] = '1' (a start sent along with the claim, for an id a wake token named),
-- an id is started only if this worker holds it and it is still queued (claimed, not
-- started); any other id is answered with false and left alone.
-- KEYS: 1 worker in-flight set, then per job: its hash, its queue's started registry
-- ARGV: 1 now, 2 worker name, 3 only-if-claimed ('1' or ''), 4.. job ids
local now, worker, guarded = ARGV[1], ARGV[2], ARGV[3] == '1'
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local k = 2 * (i - 4) + 2
  local job_key, started = KEYS[k], KEYS[k + 1]
  if guarded and (redis.call('SISMEMBER', KEYS[1], id) == 0
      or redis.call('HGET', job_key, 'status') ~= 'queued') then
    out[#out + 1] = false
  elseif redis.call('EXISTS', job_key) == 1 then
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

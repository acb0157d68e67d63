-- Mark claimed jobs started and return their hashes. A job starts only while it is
-- still 'queued' (claimed, not started), or 'started' by this same worker (a start whose
-- reply was lost). Any other claimed id never runs: its hash expired or was deleted,
-- it was canceled between claim and start, or its key is not a job hash. It leaves
-- this worker's in-flight set (and the started registry, unless another worker runs
-- it) and is answered with 0 (gone) or its status.
-- With ARGV[3] = '1' (a start sent along with the claim, for ids the worker expects
-- that claim to take), an id this worker does not hold, or holds started already, is
-- answered with false and left alone.
-- KEYS: 1 worker in-flight set, then per job: its hash, its queue's started registry
-- ARGV: 1 now, 2 worker name, 3 only-if-claimed ('1' or ''), 4.. job ids
local now, worker, guarded = ARGV[1], ARGV[2], ARGV[3] == '1'
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local k = 2 * (i - 4) + 2
  local job_key, started = KEYS[k], KEYS[k + 1]
  local status = redis.pcall('HGET', job_key, 'status')
  if type(status) == 'table' then
    status = 'not a job hash'  -- an error reply: the key holds another type
  end
  if guarded and (redis.call('SISMEMBER', KEYS[1], id) == 0 or status == 'started') then
    out[#out + 1] = false
  elseif status == 'queued' or (status == 'started'
      and redis.call('HGET', job_key, 'worker_name') == worker) then
    redis.call('HSET', job_key, 'status', 'started', 'started_at', now, 'worker_name', worker)
    redis.call('PERSIST', job_key)
    -- a unique job no longer waits: the next enqueue of its identity makes a new job
    local fields = redis.call('HMGET', job_key, 'unique', 'origin')
    local unique, origin = fields[1], fields[2]
    if unique and origin then
      local unique_key = string.sub(job_key, 1, #job_key - #id - 4) .. 'unique:' .. origin
        .. ':' .. unique  -- Keys.unique, under the job key's prefix
      if redis.pcall('GET', unique_key) == id then
        redis.call('DEL', unique_key)
      end
    end
    out[#out + 1] = redis.call('HGETALL', job_key)
  else
    if status ~= 'started' then
      redis.call('ZREM', started, id)
    end
    redis.call('SREM', KEYS[1], id)
    out[#out + 1] = status or 0
  end
end
return out

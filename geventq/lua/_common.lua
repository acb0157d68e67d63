-- Helpers shared by several scripts; scripts.py prepends this file to them.
-- Every key a script touches arrives in KEYS; these helpers only take them.

local function push_job(queue_key, wake_key, queues_key, queue_name, job_id, at_front)
  if at_front then
    redis.call('LPUSH', queue_key, job_id)
  else
    redis.call('RPUSH', queue_key, job_id)
  end
  -- at most one wake token: it only says "this queue may have jobs"
  if redis.call('LLEN', wake_key) == 0 then
    redis.call('RPUSH', wake_key, '1')
  end
  redis.call('SADD', queues_key, queue_name)
end

-- Keep an ended job for ttl seconds (-1: forever) and list it in a registry scored by
-- its expiry, so the registry can drop it when the hash is gone.
local function keep_ended(job_key, registry_key, job_id, now, ttl)
  if ttl == -1 then
    redis.call('PERSIST', job_key)
    redis.call('ZADD', registry_key, '+inf', job_id)
  else
    redis.call('EXPIRE', job_key, ttl)
    redis.call('ZADD', registry_key, now + ttl, job_id)
  end
end

-- The waiters counter is read from Redis, where anyone may write: a value that is not a
-- count wakes nobody, and at most 10,000 tokens are pushed (a waiter left without one
-- looks at the job again within a second).
local function notify_waiters(waiters_key, done_key)
  local n = math.min(tonumber(redis.call('GET', waiters_key) or '0') or 0, 10000)
  if n >= 1 then
    local tokens = {}
    for i = 1, math.min(n, 1000) do
      tokens[i] = '1'
    end
    for pushed = 0, n - 1, 1000 do
      redis.call('RPUSH', done_key, unpack(tokens, 1, math.min(1000, n - pushed)))
    end
    redis.call('EXPIRE', done_key, 60)
    redis.call('DEL', waiters_key)
  end
end

-- The caller passes the dependents it believes exist; refuse to act on a stale view.
-- Child ids sit at ARGV[abase], ARGV[abase + 2], ...
local function dependents_match(dependents_key, abase, n)
  if redis.call('SCARD', dependents_key) ~= n then
    return false
  end
  for i = 0, n - 1 do
    if redis.call('SISMEMBER', dependents_key, ARGV[abase + 2 * i]) == 0 then
      return false
    end
  end
  return true
end

-- Release the dependents of parent_id. For child i: KEYS[kbase + 5i .. +4] =
-- child hash, child pending set, child queue, child deferred registry, child wake;
-- ARGV[abase + 2i], ARGV[abase + 2i + 1] = child id, child queue name.
-- A failed parent releases only children that allow failure. Returns the ids released
-- from the parent's dependents set.
local function release_children(kbase, abase, n, parent_id, parent_ok, now, queues_key)
  local released = {}
  for i = 0, n - 1 do
    local k = kbase + 5 * i
    local a = abase + 2 * i
    local child_key, child_id = KEYS[k], ARGV[a]
    local exists = redis.call('EXISTS', child_key) == 1
    if not exists then
      released[#released + 1] = child_id
    elseif parent_ok or redis.call('HGET', child_key, 'allow_failure') == '1' then
      released[#released + 1] = child_id
      redis.call('SREM', KEYS[k + 1], parent_id)
      if redis.call('SCARD', KEYS[k + 1]) == 0
          and redis.call('HGET', child_key, 'status') == 'deferred' then
        redis.call('ZREM', KEYS[k + 3], child_id)
        redis.call('HSET', child_key, 'status', 'queued', 'enqueued_at', now)
        push_job(KEYS[k + 2], KEYS[k + 4], queues_key, ARGV[a + 1], child_id,
          redis.call('HGET', child_key, 'at_front') == '1')
      end
    end
  end
  return released
end

-- Helpers shared by several scripts; scripts.py prepends this file to them.
-- Every key a script touches arrives in KEYS; these helpers only take them.
-- What they read back from Redis is not trusted: a field that is not a number, or a
-- key of the wrong type, must not stop a transition half-way.

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

-- Make way for a new job under a job id (start_inline.lua, periodic.lua): refused while
-- a live job holds the id, whose status is returned (nothing is written). Else the hash
-- an ended run of that id left is deleted, so the new job inherits none of its fields,
-- and nil is returned: the caller writes the new hash. A key of another type (never
-- written by geventq) is deleted likewise.
local function clear_for_new_job(job_key)
  local status = redis.pcall('HGET', job_key, 'status')
  if is_live(status) then
    return status
  end
  redis.call('DEL', job_key)
  return nil
end

-- Expire an ended job's hash after ttl seconds (-1: keep it forever); returns its score
-- in the registry of ended jobs (its expiry), so the registry can drop it when the hash
-- is gone. end_batch.lua adds the scores many at a time; keep_ended adds one.
local function expire_ended(job_key, now, ttl)
  if ttl == -1 then
    redis.call('PERSIST', job_key)
    return '+inf'
  end
  redis.call('EXPIRE', job_key, ttl)
  return now + ttl
end

-- Keep an ended job for ttl seconds (-1: forever) and list it in its registry.
local function keep_ended(job_key, registry_key, job_id, now, ttl)
  redis.call('ZADD', registry_key, expire_ended(job_key, now, ttl), job_id)
end

-- Write a started job's end: status outcome, ended_at, its payload (result or exc_info)
-- and n_extra field/value pairs read from ARGV[from ..], then expire it (expire_ended).
-- A finished job kept for 0 seconds is deleted instead. Returns its registry score, or
-- nil when deleted.
local function write_ended(job_key, outcome, now, ttl, field, payload, from, n_extra)
  if outcome == 'finished' and ttl == 0 then
    redis.call('DEL', job_key)
    return nil
  end
  redis.call('HSET', job_key, 'status', outcome, 'ended_at', now, field, payload,
    unpack(ARGV, from, from + 2 * n_extra - 1))
  return expire_ended(job_key, now, ttl)
end

-- The end event, for listeners of job.events() (a stream exists only if one may listen).
local function add_end_event(events_key, outcome, now)
  if redis.call('TYPE', events_key).ok == 'stream' then  -- not EXISTS: XADD to another type would fail mid-script
    redis.call('XADD', events_key, '*', 'event', outcome, 'at', now)
    redis.call('EXPIRE', events_key, 300)
  end
end

-- A whole number of seconds in 1 .. 2^31 - 1 (MAX_SECONDS) read from a job's hash, else nil.
local function as_ttl(raw)
  local ttl = tonumber(raw or '')
  if ttl and ttl >= 1 and ttl <= 2147483647 and ttl == math.floor(ttl) then
    return ttl
  end
  return nil
end

-- Wake the clients blocked in Job.wait(): one token per waiter, at most 1000 (a waiter
-- past those sees the end within a second: wait() reads the status again after each
-- second). A counter that is not a number, or keys of the wrong type, are ignored.
local function notify_waiters(waiters_key, done_key)
  local raw = redis.pcall('GET', waiters_key)
  if type(raw) ~= 'string' then
    return
  end
  local n = math.min(math.floor(tonumber(raw) or 0), 1000)
  if n > 0 then
    local tokens = {}
    for i = 1, n do
      tokens[i] = '1'
    end
    redis.pcall('RPUSH', done_key, unpack(tokens))  -- bounded: n <= 1000 above
    redis.pcall('EXPIRE', done_key, 60)
  end
  redis.call('DEL', waiters_key)
end

-- Add one try's exc_info to the job's exc_history (a JSON list, jobs with retry=).
-- A history that is not a JSON list starts again rather than stopping the transition.
local function append_exc_history(job_key, text)
  local raw = redis.call('HGET', job_key, 'exc_history')
  local ok, history = pcall(cjson.decode, raw or '[]')
  if not ok or type(history) ~= 'table' or (next(history) ~= nil and #history == 0) then
    history = {}
  end
  history[#history + 1] = text
  redis.call('HSET', job_key, 'exc_history', cjson.encode(history))
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

-- Keys per dependent that release_children takes.
local CHILD_KEYS = 7

-- Release the dependents of parent_id. For child i: KEYS[kbase + 7i .. +6] = child hash,
-- child pending set, child queue, child deferred registry, child wake, child scheduled
-- registry, child expiring set; ARGV[abase + 2i], ARGV[abase + 2i + 1] = child id, child
-- queue name. A parent that did not finish releases only children that allow failure.
-- A child whose last dependency this was leaves the deferred registry for its queue
-- (its ttl, if any, counting from now), or for the scheduled registry when it was
-- enqueued with a due time still ahead. Returns the ids that no longer wait on the parent.
local function release_children(kbase, abase, n, parent_id, parent_ok, now, queues_key)
  local released = {}
  for i = 0, n - 1 do
    local k = kbase + CHILD_KEYS * i
    local a = abase + 2 * i
    local child_key, child_id = KEYS[k], ARGV[a]
    local status = redis.pcall('HGET', child_key, 'status')
    if type(status) ~= 'string' then
      -- gone (or not a job hash): nothing waits any more
      released[#released + 1] = child_id
      redis.call('ZREM', KEYS[k + 3], child_id)
    elseif parent_ok or redis.call('HGET', child_key, 'allow_failure') == '1' then
      released[#released + 1] = child_id
      redis.pcall('SREM', KEYS[k + 1], parent_id)
      local left = redis.pcall('SCARD', KEYS[k + 1])
      if status == 'deferred' and (type(left) ~= 'number' or left == 0) then
        redis.call('ZREM', KEYS[k + 3], child_id)
        local due = tonumber(redis.call('HGET', child_key, 'scheduled_at') or '')
        if due and due > tonumber(now) then
          redis.call('HSET', child_key, 'status', 'scheduled')
          redis.call('ZADD', KEYS[k + 5], due, child_id)
          redis.call('SADD', queues_key, ARGV[a + 1])
        else
          redis.call('HSET', child_key, 'status', 'queued', 'enqueued_at', now)
          push_job(KEYS[k + 2], KEYS[k + 4], queues_key, ARGV[a + 1], child_id,
            redis.call('HGET', child_key, 'at_front') == '1')
          -- ttl: the longest the job may wait in its queue, from now
          local ttl = as_ttl(redis.call('HGET', child_key, 'ttl'))
          if ttl then
            redis.call('EXPIRE', child_key, ttl)
            redis.call('ZADD', KEYS[k + 6], now + ttl, child_id)
          end
        end
      end
    end
  end
  return released
end

-- Every path that ends a job (finished, failed, stopped, canceled) calls this once:
-- release its dependents (see release_children), then forget those that no longer wait
-- on it. Children that do not allow failure go on waiting on a parent that did not
-- finish: it may be requeued and finish later.
local function end_dependents(dependents_key, kbase, abase, n, parent_id, parent_ok, now,
                              queues_key)
  local released = release_children(kbase, abase, n, parent_id, parent_ok, now, queues_key)
  if parent_ok then
    redis.call('DEL', dependents_key)
  else
    for s = 1, #released, 1000 do  -- unpack() takes a few thousand values at most
      redis.call('SREM', dependents_key, unpack(released, s, math.min(s + 999, #released)))
    end
  end
end

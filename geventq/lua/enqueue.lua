-- Enqueue one job: write its hash and put it on its queue, or defer it behind its
-- dependencies, or park it in the scheduled registry. Nothing is written when a
-- dependency is missing or the id is taken by a live job.
-- KEYS: 1 job, 2 queue, 3 queues set, 4 wake, 5 deferred registry, 6 own pending set,
--       7 expiring, 8 scheduled registry, then per dependency: its hash, its dependents set,
--       then, for a unique job (geventq.unique): its identity's key
-- ARGV: 1 id, 2 queue name, 3 now, 4 at_front, 5 ttl, 6 n deps, 7 allow_failure,
--       8 scheduled_at ('' = now), 9.. dependency ids, then hash field/value pairs
-- Every argument is checked before the first write: a bad one writes nothing.
-- A unique job whose identity's key names another job still waiting (queued, scheduled or
-- deferred) is not written: the answer is {'exists', that job's id}.
local job_id, queue_name, now = ARGV[1], ARGV[2], ARGV[3]
local at_front = ARGV[4] == '1'
local ttl = whole(ARGV[5], -1, 2147483647)  -- -1: none
local n_deps = whole(ARGV[6], 0, (#KEYS - 8) / 2)
local allow_failure = ARGV[7] == '1'
local scheduled_at = ARGV[8]
local n_fields = #ARGV - 8 - (n_deps or 0)
if not finite(now) then
  return {'invalid', 'now', now}
elseif not ttl or ttl == 0 then
  return {'invalid', 'ttl', ARGV[5]}
elseif not n_deps or (#KEYS ~= 8 + 2 * n_deps and #KEYS ~= 9 + 2 * n_deps) then
  return {'invalid', 'number of dependencies', ARGV[6]}
elseif scheduled_at ~= '' and not finite(scheduled_at) then
  return {'invalid', 'scheduled_at', scheduled_at}
elseif n_fields < 2 or n_fields % 2 ~= 0 or n_fields > 400 then
  return {'invalid', 'number of hash field arguments', tostring(n_fields)}
end

local status = redis.call('HGET', KEYS[1], 'status')
if is_live(status) then
  return {'duplicate', status}
end
for i = 1, n_deps do
  if redis.call('EXISTS', KEYS[7 + 2 * i]) == 0 then
    return {'missing', ARGV[8 + i]}
  end
end
local unique_key = #KEYS == 9 + 2 * n_deps and KEYS[#KEYS] or nil
if unique_key then
  local existing = redis.pcall('GET', unique_key)
  if type(existing) == 'string' and existing ~= job_id then
    local prefix = string.sub(KEYS[1], 1, #KEYS[1] - #job_id)  -- the job key's, as Keys.job
    local other = redis.pcall('HGET', prefix .. existing, 'status')
    if other == 'queued' or other == 'scheduled' or other == 'deferred' then
      return {'exists', existing}
    end
  end
  redis.call('SET', unique_key, job_id)  -- a key of another type is someone else's: replaced
end

-- the id's previous job ran out of ttl while queued here, and the claims, which drop
-- expired ids only at the head, have not reached its entry: take that out, or it would
-- be claimed as this new job too (a rare path: one LREM)
if redis.call('ZSCORE', KEYS[7], job_id) then
  redis.call('LREM', KEYS[2], 1, job_id)
  redis.call('ZREM', KEYS[7], job_id)
end
redis.call('DEL', KEYS[1], KEYS[6])
local fields = {}
for i = 9 + n_deps, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
-- bounded: the fields of one job hash
redis.call('HSET', KEYS[1], unpack(fields))

local waiting = 0
for i = 1, n_deps do
  local dep_status = redis.call('HGET', KEYS[7 + 2 * i], 'status')
  local done = dep_status == 'finished' or (allow_failure and
    (dep_status == 'failed' or dep_status == 'stopped' or dep_status == 'canceled'))
  if not done then
    redis.call('SADD', KEYS[8 + 2 * i], job_id)
    redis.call('SADD', KEYS[6], ARGV[8 + i])
    waiting = waiting + 1
  end
end

local outcome
if waiting > 0 then
  redis.call('HSET', KEYS[1], 'status', 'deferred')
  redis.call('ZADD', KEYS[5], now, job_id)
  outcome = 'deferred'
elseif scheduled_at ~= '' then
  redis.call('HSET', KEYS[1], 'status', 'scheduled')
  redis.call('ZADD', KEYS[8], scheduled_at, job_id)
  redis.call('SADD', KEYS[3], queue_name)
  outcome = 'scheduled'
else
  redis.call('HSET', KEYS[1], 'status', 'queued', 'enqueued_at', now)
  push_job(KEYS[2], KEYS[4], KEYS[3], queue_name, job_id, at_front)
  if ttl > 0 then
    redis.call('ZADD', KEYS[7], now + ttl, job_id)
  end
  outcome = 'queued'
end
-- ttl: the longest a job may wait in its queue. A scheduled job's starts when the
-- scheduler queues it (schedule_due.lua), a deferred one's when its dependencies release
-- it (release_children): neither expires while it waits for those
if ttl > 0 and outcome == 'queued' then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return {outcome}

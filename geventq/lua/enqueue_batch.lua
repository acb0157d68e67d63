-- Enqueue a batch of jobs that have no dependencies and no schedule, in this one step:
-- write each hash and push every id onto the queue. When the ids were given by the
-- caller, the whole batch is refused, with nothing written, if any id is taken by a
-- live job (generated ids are random and are not looked up).
-- The jobs of a batch share their options; only id, data and a few fields differ.
-- KEYS: 1 queue, 2 queues set, 3 wake, 4 expiring, 5 scratch hash, then per job: its
--       hash, and when the ids are checked (ARGV[4] = '1') its pending set
-- ARGV: 1 queue name, 2 now, 3 ttl ('' = none), 4 check ids ('1' or ''), 5 at_front
--       ('1' or ''), 6 t, then t shared field/value arguments, then per job: id, data,
--       n, then n field/value arguments of its own
-- Every hash also gets status, origin, created_at and enqueued_at from here. The shared
-- fields are written once, into the scratch hash, and COPYed into each job's hash: that
-- costs Redis less than writing them again for every job.
-- Every argument is checked before the first write: a bad one writes nothing. A call
-- takes at most 1000 jobs (each unpack() below stays far under Lua's limit).
local queue_name, now, ttl = ARGV[1], ARGV[2], nil
local checked, at_front = ARGV[4] == '1', ARGV[5] == '1'
local t = whole(ARGV[6], 0, 200)
local now_number = tonumber(now)
if not now_number or now_number ~= now_number or now_number == math.huge
    or now_number == -math.huge then
  return {'invalid', 'now', now}
elseif ARGV[3] ~= '' then
  ttl = whole(ARGV[3], 1, 2147483647)
  if not ttl then
    return {'invalid', 'ttl', ARGV[3]}
  end
end
if not t or t % 2 ~= 0 then
  return {'invalid', 'number of shared field arguments', ARGV[6]}
end
local first, last = 7 + t, #ARGV
local step = checked and 2 or 1
local jobs = 0
local a = first
while a <= last do  -- each job: id, data, n, then n own field arguments
  local n = whole(ARGV[a + 2], 0, 200)
  if not n or n % 2 ~= 0 or a + 2 + n > last then
    return {'invalid', 'number of own field arguments', tostring(ARGV[a + 2])}
  end
  jobs = jobs + 1
  a = a + 3 + n
end
if jobs == 0 or jobs > 1000 or #KEYS ~= 5 + step * jobs then
  return {'invalid', 'number of jobs', tostring(jobs)}
end
local fields = {'status', 'queued', 'origin', queue_name, 'created_at', now, 'enqueued_at', now}
for i = 7, 6 + t do
  fields[#fields + 1] = ARGV[i]
end
local own = {'data'}  -- each job's data, then its own fields

if checked then
  local a, j = first, 6
  while a <= last do
    local status = redis.call('HGET', KEYS[j], 'status')
    if is_live(status) then
      return {'duplicate', ARGV[a], status}
    end
    a = a + 3 + tonumber(ARGV[a + 2])
    j = j + 2
  end
  -- a reused id (its old run ended) starts from a clean hash
  -- bounded: 2 keys per job, enqueueing.BATCH (1,000) jobs per call
  redis.call('DEL', unpack(KEYS, 6))
  -- an id whose previous job ran out of ttl while queued here, its entry not yet
  -- dropped by a claim: take the entry out, or it would be claimed as the new job too
  a = first
  while a <= last do
    if redis.call('ZSCORE', KEYS[4], ARGV[a]) then
      redis.call('LREM', KEYS[1], 1, ARGV[a])
      redis.call('ZREM', KEYS[4], ARGV[a])
    end
    a = a + 3 + tonumber(ARGV[a + 2])
  end
end

local single = jobs == 1  -- one job: written directly
if not single then
  redis.call('DEL', KEYS[5])
  -- bounded: the fields of one job hash
  redis.call('HSET', KEYS[5], unpack(fields))
end
local ids = {}
local head  -- the id at the queue's head end of this batch, named by the wake token
local j = 6
a = first
while a <= last do
  local n = tonumber(ARGV[a + 2])
  own[2] = ARGV[a + 1]
  for i = 1, n do
    own[2 + i] = ARGV[a + 2 + i]
  end
  if single then
    for i = 1, 2 + n do
      fields[#fields + 1] = own[i]
    end
    -- bounded: the fields of one job hash
    redis.call('HSET', KEYS[j], unpack(fields))
  else
    redis.call('COPY', KEYS[5], KEYS[j], 'REPLACE')
    redis.call('HSET', KEYS[j], unpack(own, 1, 2 + n))
  end
  if ttl then
    redis.call('EXPIRE', KEYS[j], ttl)
    redis.call('ZADD', KEYS[4], now + ttl, ARGV[a])
  end
  ids[#ids + 1] = ARGV[a]
  if at_front or not head then
    head = ARGV[a]
  end
  if #ids == 1000 then  -- unpack() is limited to a few thousand values
    -- bounded: at most 1,000 ids (flushed at 1,000)
    redis.call(at_front and 'LPUSH' or 'RPUSH', KEYS[1], unpack(ids))
    ids = {}
  end
  a = a + 3 + n
  j = j + step
end
if #ids > 0 then
  -- bounded: at most 1,000 ids (flushed at 1,000)
  redis.call(at_front and 'LPUSH' or 'RPUSH', KEYS[1], unpack(ids))
end
if not single then
  redis.call('DEL', KEYS[5])
end
-- at most one wake token: it says "this queue may have jobs"; this one also names a job,
-- so that an idle worker can start it in the same round trip as its claim
if redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], head)
end
redis.call('SADD', KEYS[2], queue_name)
return {'queued'}

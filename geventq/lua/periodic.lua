-- Advance a periodic entry to its latest occurrence and enqueue that occurrence's job,
-- in one step, only if the entry still stands where the caller read it (compare and
-- set): however many schedulers try, each occurrence is enqueued at most once.
-- KEYS: 1 periodic hash, 2 job, 3 queue, 4 wake, 5 queues set, 6 expiring
-- ARGV: 1 entry name, 2 occurrence the caller read ('' = none), 3 new occurrence,
--       4 queue name, 5 now, 6 at_front, 7 ttl, 8 job id ('' = only advance),
--       then the job's hash field/value pairs
-- Every argument is checked before the first write: a bad one writes nothing.
local ttl = tonumber(ARGV[7])
local n_fields = #ARGV - 8
if not finite(ARGV[3]) then
  return {'invalid', 'occurrence', ARGV[3]}
elseif not finite(ARGV[5]) then
  return {'invalid', 'now', ARGV[5]}
elseif not ttl or ttl ~= math.floor(ttl) or ttl < -1 or ttl == 0 or ttl > 2147483647 then
  return {'invalid', 'ttl', ARGV[7]}
elseif n_fields % 2 ~= 0 or n_fields > 400 or (ARGV[8] ~= '' and n_fields < 2) then
  return {'invalid', 'number of hash field arguments', tostring(n_fields)}
end
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then
  return {'stale', current}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[8] == '' then
  return {'advanced'}
end
local live = clear_for_new_job(KEYS[2])
if live then
  return {'duplicate', live}
end
local fields = {}
for i = 9, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
-- bounded: the fields of one job hash
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('HSET', KEYS[2], 'status', 'queued', 'enqueued_at', ARGV[5])
push_job(KEYS[3], KEYS[4], KEYS[5], ARGV[4], ARGV[8], ARGV[6] == '1')
if ttl > 0 then
  redis.call('ZADD', KEYS[6], ARGV[5] + ttl, ARGV[8])
  redis.call('EXPIRE', KEYS[2], ttl)
end
return {'queued'}

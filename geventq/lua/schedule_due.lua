-- Queue the due jobs of one scheduled registry. Each id is re-checked here (still in
-- the registry, due, status scheduled), so a job is queued once even if two schedulers
-- race; an entry whose job is gone or no longer scheduled is dropped.
-- KEYS: 1 scheduled registry, 2 queue, 3 wake, 4 queues set, 5 expiring,
--       then the hash of every id in ARGV
-- ARGV: 1 queue name, 2 now, 3.. ids the caller found due
-- The arguments are checked before the first write; each job's stored ttl is read
-- (and checked: the hash may come from any writer) before that job's first write.
local queue_name, now = ARGV[1], tonumber(ARGV[2])
if not now or now ~= now or now == math.huge or now == -math.huge then
  return redis.error_reply('schedule_due: now must be a finite number, got ' .. tostring(ARGV[2]))
elseif #KEYS ~= #ARGV + 3 then
  return redis.error_reply('schedule_due: one job key per id is needed')
end
local moved = 0
for i = 3, #ARGV do
  local id, job_key = ARGV[i], KEYS[i + 3]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now then
    -- ttl: the longest the job may wait in the queue, from now; one that is not whole
    -- seconds in range (written by someone else) is ignored rather than half-applied
    local ttl = tonumber(redis.call('HGET', job_key, 'ttl') or '')
    if not ttl or ttl ~= math.floor(ttl) or ttl < 1 or ttl > 2147483647 then
      ttl = 0
    end
    redis.call('ZREM', KEYS[1], id)
    if redis.call('HGET', job_key, 'status') == 'scheduled' then
      redis.call('HSET', job_key, 'status', 'queued', 'enqueued_at', ARGV[2])
      push_job(KEYS[2], KEYS[3], KEYS[4], queue_name, id,
        redis.call('HGET', job_key, 'at_front') == '1')
      if ttl > 0 then
        redis.call('ZADD', KEYS[5], now + ttl, id)
        redis.call('EXPIRE', job_key, ttl)
      end
      moved = moved + 1
    end
  end
end
return moved

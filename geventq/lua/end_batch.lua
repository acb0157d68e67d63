-- End many started jobs of one queue in one step: finished (with its result), failed
-- or stopped (with exc_info). Each job is what end.lua does for a job with no
-- dependents and no retry left to decide; like end.lua, it acts only on jobs the worker
-- still holds, and writes only to those still 'started'. A job that turns out to have
-- dependents is left untouched and reported, for end.lua to end it with its
-- dependents released.
-- Every job is checked before the first write (the reads that can fail on a key a
-- hostile writer replaced come first): a call that fails has changed nothing.
-- KEYS: 1 worker in-flight set, 2 started registry, 3 finished registry, 4 failed
--       registry, then per job: its hash, its dependents set, its waiters, its done list,
--       then per job: its events stream
-- ARGV: 1 now, then per job: id, outcome, ttl, payload, n extra fields, then those
--       field/value pairs
-- A job of a limit key gives its slot back (_limits.lua).
-- Returns, for each job left untouched: its position (1-based) and its dependents.
local now = ARGV[1]
local skipped, ended = {}, {}
local targets = {finished = {}, failed = {}}

-- first pass, reads only: what to do with each job
local plan = {}  -- per job: false (not ours), 'skip', 'drop' (ours, not started) or 'end'
local limit_names = {}  -- per job: its limit key (the hash may be deleted below)
local prefix = ARGV[2] and limit_prefix(KEYS[5], 'job:' .. ARGV[2])
local a, k, i = 2, 5, 1
while a <= #ARGV do
  local job_id = ARGV[a]
  if redis.call('SISMEMBER', KEYS[1], job_id) == 0 then
    plan[i] = false
  elseif redis.call('SCARD', KEYS[k + 1]) > 0 then
    plan[i] = 'skip'
    skipped[#skipped + 1] = i
    skipped[#skipped + 1] = redis.call('SMEMBERS', KEYS[k + 1])
  else
    local fields = redis.call('HMGET', KEYS[k], 'status', 'limit')
    plan[i] = fields[1] == 'started' and 'end' or 'drop'
    limit_names[i] = fields[2]
  end
  a = a + 5 + 2 * tonumber(ARGV[a + 4])
  k = k + 4
  i = i + 1
end

local events_at = 4 + 4 * (i - 1)  -- the events stream of job i is KEYS[events_at + i]
a, k, i = 2, 5, 1
while a <= #ARGV do
  local job_id, outcome, ttl = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local n_extra = tonumber(ARGV[a + 4])
  local job_key = KEYS[k]
  local ours = plan[i] == 'end' or plan[i] == 'drop'
  if ours then
    ended[#ended + 1] = job_id
  end
  if plan[i] == 'end' then
    local score = write_ended(job_key, outcome, now, ttl,
      outcome == 'finished' and 'result' or 'exc_info', ARGV[a + 3], a + 5, n_extra)
    if score then
      local target = targets[outcome == 'finished' and 'finished' or 'failed']
      target[#target + 1] = score
      target[#target + 1] = job_id
    end
    add_end_event(KEYS[events_at + i], outcome, now)
  end
  if ours then
    notify_waiters(KEYS[k + 2], KEYS[k + 3])
    limit_release(prefix, limit_names[i], job_id)
  end
  a = a + 5 + 2 * n_extra
  k = k + 4
  i = i + 1
end

-- the registries, many members per command (unpack() takes a few thousand values)
local function each_chunk(list, step, fn)
  for s = 1, #list, step do
    fn(unpack(list, s, math.min(s + step - 1, #list)))
  end
end
each_chunk(ended, 1000, function(...) redis.call('ZREM', KEYS[2], ...) end)
each_chunk(ended, 1000, function(...) redis.call('SREM', KEYS[1], ...) end)
each_chunk(targets.finished, 1000, function(...) redis.call('ZADD', KEYS[3], ...) end)
each_chunk(targets.failed, 1000, function(...) redis.call('ZADD', KEYS[4], ...) end)
return skipped

-- Limits per key (geventq.limits): helpers of the claim and of every script that ends,
-- puts back or cancels a job. scripts.py prepends this file to them.
--
-- Which key limits a job is only known here, from its hash (field 'limit'), so the per-key
-- names are built here from the prefix, in the formats of geventq/keys.py (Keys.limit_*,
-- Keys.queue, Keys.wake, Keys.job). The prefix is taken from a key the caller passed in
-- KEYS; on a Redis Cluster it carries the hash tag, so every name built is in the same slot.
--
-- Per key <k>: limit:<k>:slots (zset: running job id -> deadline), limit:<k>:starts (list
-- of start times, newest first: the rate window), limit:<k>:parked (list of ids held back,
-- oldest first). The hash 'limits' holds the definition "concurrency rate per" (field <k>,
-- latest wins; else the job's limit_def) and until when nothing of the key starts (field
-- <k>TAB'hold', RateLimited): one HMGET reads both.
-- Everything read is untrusted: a definition that does not parse limits nothing.

local LIMIT_HEAL_EVERY = 1      -- seconds between looks at a key whose jobs are parked
local LIMIT_SLOT_GRACE = 60     -- seconds a slot outlives its job's timeout
local LIMIT_NO_TIMEOUT = 86400  -- deadline of a job without a timeout (renewed while it runs)
local LIMIT_UNPARK_MAX = 100    -- ids one look at a key may put back

-- the prefix of `key`, which is prefix .. suffix
local function limit_prefix(key, suffix)
  return string.sub(key, 1, #key - #suffix)
end

local function limit_key(prefix, name, part)
  return prefix .. 'limit:' .. name .. ':' .. part
end

-- {concurrency, rate, per} from "c r per" ('-' for none); nil when nothing parses
local function limit_parse(text)
  if type(text) ~= 'string' then
    return nil
  end
  local c, r, p = string.match(text, '^(%S+) (%S+) (%S+)$')
  local conc, rate, per = tonumber(c or ''), tonumber(r or ''), tonumber(p or '')
  if conc and (conc < 1 or conc ~= math.floor(conc)) then conc = nil end
  if rate and (rate < 1 or rate ~= math.floor(rate) or rate > 10000) then rate = nil end
  if not per or per <= 0 or per ~= per or per == math.huge then rate = nil end
  if not conc and not rate then
    return nil
  end
  return {conc = conc, rate = rate, per = per}
end

-- the definition of a key (the latest stored in the limits hash, else the job's own), with
-- .hold: until when nothing of the key starts (0: not held)
local function limit_definition(limits_key, name, own)
  local stored = redis.pcall('HMGET', limits_key, name, name .. '\thold')
  if type(stored) ~= 'table' then
    stored = {}
  end
  local def = limit_parse(stored[1]) or limit_parse(own)
  if def then
    def.hold = tonumber(stored[2] or '') or 0
  end
  return def
end

-- the time from which job `job_id` of the key may start (0: now), given its definition
local function limit_open_at(prefix, name, def, now, job_id)
  if def.hold > now then
    return def.hold
  end
  local slots = limit_key(prefix, name, 'slots')
  if def.conc and redis.call('ZCARD', slots) >= def.conc
      and not (job_id and redis.call('ZSCORE', slots, job_id)) then  -- (its own, kept)
    return math.huge  -- a freed slot puts the next job back (limit_release)
  end
  if def.rate then
    local oldest = tonumber(redis.call('LINDEX', limit_key(prefix, name, 'starts'), def.rate - 1) or '')
    if oldest and oldest > now - def.per then
      return oldest + def.per
    end
  end
  return 0
end

-- a job of the key starts now: take a slot, count the start in the window
local function limit_occupy(prefix, name, def, job_id, now, timeout)
  if def.conc then
    local t = tonumber(timeout or '')
    if not t or t <= 0 then
      t = LIMIT_NO_TIMEOUT
    end
    redis.call('ZADD', limit_key(prefix, name, 'slots'), now + t + LIMIT_SLOT_GRACE, job_id)
  end
  if def.rate then
    local starts = limit_key(prefix, name, 'starts')
    redis.call('LPUSH', starts, now)
    redis.call('LTRIM', starts, 0, def.rate - 1)
    redis.call('PEXPIRE', starts, math.ceil(def.per * 1000) + 1000)
  end
end

-- look at the key again at `at` (a parked key has a timer: the safety net of limit_release)
local function limit_arm(timers_key, name, at, now)
  if at == math.huge then
    at = now + LIMIT_HEAL_EVERY
  end
  local current = tonumber(redis.call('ZSCORE', timers_key, name) or '')
  if not current or at < current then
    redis.call('ZADD', timers_key, at, name)
  end
end

-- hold a job back: to the end of its key's parked list
local function limit_park(prefix, timers_key, name, job_id, at, now)
  redis.call('RPUSH', limit_key(prefix, name, 'parked'), job_id)
  limit_arm(timers_key, name, at, now)
end

-- put up to `count` parked ids of the key back at the head of their queues, first parked
-- first; ids no longer queued (canceled, deleted, expired) are dropped on the way
local function limit_unpark(prefix, name, count)
  local parked = limit_key(prefix, name, 'parked')
  local back = {}
  local looked = 0
  while #back < count and looked < LIMIT_UNPARK_MAX do
    local id = redis.call('LPOP', parked)
    if not id then
      break
    end
    looked = looked + 1
    local fields = redis.pcall('HMGET', prefix .. 'job:' .. id, 'status', 'origin')
    if type(fields) == 'table' and fields[1] == 'queued' and type(fields[2]) == 'string'
        and fields[2] ~= '' then
      back[#back + 1] = {id, fields[2]}
    end
  end
  for j = #back, 1, -1 do  -- the first parked ends up first in its queue
    local id, queue_name = back[j][1], back[j][2]
    redis.call('LPUSH', prefix .. 'queue:' .. queue_name, id)
    local wake = prefix .. 'wake:' .. queue_name
    if redis.call('LLEN', wake) == 0 then
      -- the token names the job, as enqueue_batch.lua's do: an idle worker sends its start
      -- along with the claim (one round trip less)
      redis.call('RPUSH', wake, id)
    end
  end
  return #back
end

-- the job left its worker's hands (ended, put back, canceled, recovered): give its slot
-- back and put the next parked job of its key back in line. `name`: the job's 'limit'.
local function limit_release(prefix, name, job_id)
  if type(name) ~= 'string' or name == '' then
    return
  end
  if redis.call('ZREM', limit_key(prefix, name, 'slots'), job_id) == 1 then
    limit_unpark(prefix, name, 1)
  end
end

-- the key's slots, healed: a slot is kept while its job runs ('started') or is claimed
-- (still 'queued', in its queue's started registry); any other (its worker died and the
-- job went back without giving it, its hash is gone, ...) is dropped. A running job whose
-- deadline passed (no timeout) gets a new one. At most LIMIT_UNPARK_MAX slots per look.
local function limit_heal(prefix, name, now)
  local slots = limit_key(prefix, name, 'slots')
  local members = redis.call('ZRANGE', slots, 0, LIMIT_UNPARK_MAX - 1, 'WITHSCORES')
  for j = 1, #members, 2 do
    local id, deadline = members[j], tonumber(members[j + 1])
    local f = redis.pcall('HMGET', prefix .. 'job:' .. id, 'status', 'origin')
    local status = type(f) == 'table' and f[1] or nil
    local keep = status == 'started'
    if status == 'queued' and type(f[2]) == 'string' then
      keep = redis.pcall('ZSCORE', prefix .. 'started:' .. f[2], id) ~= false
    end
    if not keep or (deadline < now and status ~= 'started') then
      redis.call('ZREM', slots, id)
    elseif deadline < now then
      redis.call('ZADD', slots, now + LIMIT_NO_TIMEOUT, id)
    end
  end
end

-- how many jobs of the key may start now, and when to look again if that is none
local function limit_room(prefix, name, def, now)
  if def.hold > now then
    return 0, def.hold
  end
  local room, again = LIMIT_UNPARK_MAX, math.huge
  if def.conc then
    room = math.min(room, def.conc - redis.call('ZCARD', limit_key(prefix, name, 'slots')))
  end
  if def.rate then
    local starts = redis.call('LRANGE', limit_key(prefix, name, 'starts'), 0, def.rate - 1)
    local recent = 0
    for _, t in ipairs(starts) do
      local at = tonumber(t) or 0
      if at > now - def.per then
        recent = recent + 1
        again = math.min(again, at + def.per)
      end
    end
    room = math.min(room, def.rate - recent)
  end
  return math.max(room, 0), again
end

-- the keys whose timer is due: heal them, put back what may start, arm them again while
-- jobs stay parked. At most `budget` keys per call.
local function limit_timers(prefix, limits_key, timers_key, now, budget)
  local due = redis.call('ZRANGEBYSCORE', timers_key, '-inf', now, 'LIMIT', 0, budget)
  for _, name in ipairs(due) do
    redis.call('ZREM', timers_key, name)
    local parked = limit_key(prefix, name, 'parked')
    if redis.call('LLEN', parked) > 0 then
      local def = limit_definition(limits_key, name, nil)
      limit_heal(prefix, name, now)
      local room, again = LIMIT_UNPARK_MAX, math.huge
      if def then
        room, again = limit_room(prefix, name, def, now)
      end
      if room > 0 then
        limit_unpark(prefix, name, room)
      end
      if redis.call('LLEN', parked) > 0 then
        limit_arm(timers_key, name, room > 0 and now + LIMIT_HEAL_EVERY or again, now)
      end
    end
  end
end

-- seconds until the nearest timer (-1: none): how long an idle worker may wait at most
local function limit_next_timer(timers_key, now)
  local first = redis.call('ZRANGE', timers_key, 0, 0, 'WITHSCORES')
  if #first == 0 then
    return -1
  end
  return math.max(0, tonumber(first[2]) - now)
end

-- RateLimited: no job of the key starts before `until_at` (a job of the key met meanwhile is
-- parked with a timer for then: no timer is armed here, so that a burst worker does not
-- wait for a key that has nothing parked)
local function limit_hold(prefix, name, until_at, now)
  if type(name) ~= 'string' or name == '' or until_at <= now then
    return
  end
  local limits, field = prefix .. 'limits', name .. '\thold'  -- Keys.limits
  local current = tonumber(redis.pcall('HGET', limits, field) or '')
  if not current or current < until_at then
    redis.call('HSET', limits, field, until_at)
  end
end

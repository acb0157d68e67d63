-- Claim up to ARGV[2] jobs from the queues in priority order. Each claimed id moves,
-- in this one step, from its queue into the queue's started registry and the
-- worker's in-flight set: at no instant is it in neither.
-- KEYS: per queue i (ARGV[1] of them): queue, started registry, expiring, wake; then
--       the worker's in-flight set, then (optional, all three or none) the set of paused
--       queue names, the limits hash, the limit timers
-- ARGV: 1 number of queues, 2 how many to claim, 3 now, 4 how many to peek at (optional),
--       5 .. 4 + ARGV[1]: the queue names (with the optional keys)
-- A paused queue is skipped: nothing claimed from it, nothing peeked at, and its wake
-- token deleted (idle workers must not wake for it again and again; enqueueing pushes a
-- token, unpausing pushes one when the queue holds jobs).
-- Limits per key (_limits.lua), once any job has carried one (the limits hash is not
-- empty): each id popped is looked up (its hash's 'limit'); a job whose key has no room
-- is parked (moved to its key's parked list, out of the queue, so that the keys behind
-- it are claimed: no head-of-line blocking) and its key given a timer; a freed slot or a
-- due timer puts it back at the head of its queue. At most SCAN_BUDGET ids are looked at
-- per call. The due timers are looked at first.
-- Returns two flat lists of queue index (0-based), job id, queue index, job id, ...:
-- the claimed jobs, and the next ARGV[4] ids the queues hold after the claim, in the
-- order a claim would take them (read only: the worker sends their guarded start along
-- with its next claim, so that claim costs one round trip instead of two); then the
-- number of queues whose head was not all looked at (DROP_BUDGET or SCAN_BUDGET
-- reached); then the milliseconds until the nearest limit timer (-1: none), the longest
-- an idle worker may wait before it claims again.
--
-- Expired ids (ttl ran out while queued) are not searched for in the list, which
-- would cost O(queue length) per id: they are dropped when they reach the head, as the
-- claim pops them. Only a queue that holds expired ids right now (one ZCOUNT) has its
-- head looked up in `expiring`, one ZMSCORE per window of ids.
local CHUNK = 1000         -- values per command (unpack() takes a few thousand at most)
local DROP_BUDGET = 2000   -- expired ids one claim may drop per queue: bounds its cost
local SCAN_BUDGET = 500    -- ids one claim may look up for their limit: bounds its cost
local TIMER_BUDGET = 20    -- due limit timers one claim looks at

local n, want, now = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local now_n = tonumber(now)
local peek = tonumber(ARGV[4] or '0')
local peeked = {}
local in_flight = KEYS[4 * n + 1]
local paused_key, limits_key, timers_key = KEYS[4 * n + 2], KEYS[4 * n + 3], KEYS[4 * n + 4]
local claimed = {}
local cut_short = 0

-- one SCARD when nothing is paused (nearly always); a paused set of another type (not
-- written by geventq) reads as empty rather than stopping every claim
local some_paused = false
if paused_key then
  local count = redis.pcall('SCARD', paused_key)
  some_paused = type(count) == 'number' and count > 0
end

local function is_paused(i)
  return some_paused and ARGV[5 + i] ~= nil
    and redis.call('SISMEMBER', paused_key, ARGV[5 + i]) == 1
end

-- limits: looked at only once some job has carried one
local limited, prefix = false, nil
if limits_key and timers_key and ARGV[5] then
  local count = redis.pcall('HLEN', limits_key)
  limited = type(count) == 'number' and count > 0
  prefix = limit_prefix(KEYS[1], 'queue:' .. ARGV[5])
end
local scan_left = SCAN_BUDGET
local defs = {}  -- limit key -> its definition (false: none that parses), per call

-- the ids (popped from a queue) that may start now; the others are parked
local function admit(ids, expiring)
  if not limited then
    return ids
  end
  local ok, parked = {}, {}
  for _, id in ipairs(ids) do
    scan_left = scan_left - 1
    local f = redis.pcall('HMGET', prefix .. 'job:' .. id, 'limit', 'limit_def', 'timeout', 'status')
    local name = type(f) == 'table' and f[1] or nil
    local def = false
    if type(name) == 'string' and f[4] == 'queued' then
      def = defs[name]
      if def == nil then
        def = limit_definition(limits_key, name, f[2]) or false
        defs[name] = def
      end
    end
    if not def then
      ok[#ok + 1] = id  -- no limit (or not queued any more: start.lua drops it)
    else
      local at = limit_open_at(prefix, name, def, now_n, id)
      if at == 0 then
        limit_occupy(prefix, name, def, id, now_n, f[3])
        ok[#ok + 1] = id
      else
        limit_park(prefix, timers_key, name, id, at, now_n)
        parked[#parked + 1] = id
      end
    end
  end
  if #parked > 0 then
    -- a parked id is out of its queue: `expiring` lists only ids in the queue (its hash
    -- keeps its expiry, so a job parked past its ttl is dropped when put back)
    redis.call('ZREM', expiring, unpack(parked))  -- bounded: ids of one window
  end
  return ok
end

-- move ids from queue i's head (already popped) into its started registry and in-flight
-- set, those that may start (see admit); returns how many were claimed
local function take(i, ids, started, expiring)
  ids = admit(ids, expiring)
  for s = 1, #ids, CHUNK do
    local e = math.min(s + CHUNK - 1, #ids)
    local scored = {}
    for j = s, e do
      scored[#scored + 1] = now
      scored[#scored + 1] = ids[j]
      claimed[#claimed + 1] = i
      claimed[#claimed + 1] = ids[j]
    end
    -- bounded: 2 values per id of one chunk (CHUNK ids)
    redis.call('ZADD', started, unpack(scored))
    redis.call('SADD', in_flight, unpack(ids, s, e))
    redis.call('ZREM', expiring, unpack(ids, s, e))
  end
  return #ids
end

-- claim up to `wanted` live ids from the head of a queue that holds expired ids,
-- dropping the expired ones met on the way (at most DROP_BUDGET); returns how many
-- were claimed and whether a budget ran out
local function take_skipping_expired(i, queue, started, expiring, wanted)
  local got, dropped = 0, 0
  local window = math.min(wanted, CHUNK)  -- grows to CHUNK once expired ids show up
  while got < wanted and dropped < DROP_BUDGET and scan_left > 0 do
    local ids = redis.call('LRANGE', queue, 0, window - 1)
    if #ids == 0 then
      break
    end
    -- bounded: a window of at most CHUNK ids
    local scores = redis.call('ZMSCORE', expiring, unpack(ids))
    local live, expired = {}, {}
    local used = 0
    for j = 1, #ids do
      if got + #live >= wanted or dropped + #expired >= DROP_BUDGET
          or (limited and #live >= scan_left) then
        break
      end
      used = j
      if scores[j] and tonumber(scores[j]) <= now_n then
        expired[#expired + 1] = ids[j]
      else
        live[#live + 1] = ids[j]
      end
    end
    redis.call('LTRIM', queue, used, -1)
    if #expired > 0 then
      -- bounded: ids of one window
      redis.call('ZREM', expiring, unpack(expired))
      window = CHUNK
    end
    got, dropped = got + take(i, live, started, expiring), dropped + #expired
  end
  return got, dropped >= DROP_BUDGET or scan_left <= 0
end

-- claim from queue i (not paused), keep its wake token true, peek at what it holds next
local function serve(i, queue, started, expiring, wake)
  if want > 0 then
    if redis.call('ZCOUNT', expiring, '-inf', now) > 0 then
      local got, out_of_budget = take_skipping_expired(i, queue, started, expiring, want)
      want = want - got
      if out_of_budget then
        cut_short = cut_short + 1
      end
    elseif not limited then
      local ids = redis.call('LPOP', queue, want)
      if ids then
        want = want - take(i, ids, started, expiring)
      end
    else
      -- parked ids leave room: pop again, up to the scan budget
      while want > 0 and scan_left > 0 do
        local ids = redis.call('LPOP', queue, math.min(want, scan_left))
        if not ids then
          break
        end
        want = want - take(i, ids, started, expiring)
      end
      if want > 0 and scan_left <= 0 and redis.call('LLEN', queue) > 0 then
        cut_short = cut_short + 1
      end
    end
  end
  -- keep the wake token true for every queue, claimed from or not
  if redis.call('LLEN', queue) > 0 then
    if redis.call('LLEN', wake) == 0 then
      redis.call('RPUSH', wake, '1')
    end
  else
    redis.call('DEL', wake)
  end
  local room = peek - #peeked / 2
  if room > 0 then
    for _, id in ipairs(redis.call('LRANGE', queue, 0, room - 1)) do
      peeked[#peeked + 1] = i
      peeked[#peeked + 1] = id
    end
  end
end

local next_timer = -1
if limited then
  -- parked jobs whose key has room again go back to the head of their queues first
  limit_timers(prefix, limits_key, timers_key, now_n, TIMER_BUDGET)
end

for i = 0, n - 1 do
  local queue, started, expiring, wake = KEYS[4 * i + 1], KEYS[4 * i + 2], KEYS[4 * i + 3], KEYS[4 * i + 4]
  if is_paused(i) then
    redis.call('DEL', wake)  -- claimed from again once unpaused (unpause.lua pushes a token)
  else
    serve(i, queue, started, expiring, wake)
  end
end
if limited then
  local seconds = limit_next_timer(timers_key, now_n)
  next_timer = seconds < 0 and -1 or math.floor(seconds * 1000)
end
return {claimed, peeked, cut_short, next_timer}

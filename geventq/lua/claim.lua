-- Claim up to ARGV[2] jobs from the queues in priority order. Each claimed id moves,
-- in this one step, from its queue into the queue's started registry and the
-- worker's in-flight set: at no instant is it in neither.
-- KEYS: per queue i (ARGV[1] of them): queue, started registry, expiring, wake; then
--       the worker's in-flight set, then the set of paused queue names (optional)
-- ARGV: 1 number of queues, 2 how many to claim, 3 now, 4 how many to peek at (optional),
--       5 .. 4 + ARGV[1]: the queue names (with the paused set)
-- A paused queue is skipped: nothing claimed from it, nothing peeked at, and its wake
-- token deleted (idle workers must not wake for it again and again; enqueueing pushes a
-- token, unpausing pushes one when the queue holds jobs).
-- Returns two flat lists of queue index (0-based), job id, queue index, job id, ...:
-- the claimed jobs, and the next ARGV[4] ids the queues hold after the claim, in the
-- order a claim would take them (read only: the worker sends their guarded start along
-- with its next claim, so that claim costs one round trip instead of two); then the
-- number of queues whose expired ids were not all dropped (DROP_BUDGET reached).
--
-- Expired ids (ttl ran out while queued) are not searched for in the list, which
-- would cost O(queue length) per id: they are dropped when they reach the head, as the
-- claim pops them. Only a queue that holds expired ids right now (one ZCOUNT) has its
-- head looked up in `expiring`, one ZMSCORE per window of ids.
local CHUNK = 1000         -- values per command (unpack() takes a few thousand at most)
local DROP_BUDGET = 2000   -- expired ids one claim may drop per queue: bounds its cost

local n, want, now = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local now_n = tonumber(now)
local peek = tonumber(ARGV[4] or '0')
local peeked = {}
local in_flight = KEYS[4 * n + 1]
local paused_key = KEYS[4 * n + 2]
local claimed = {}
local cut_short = 0

-- move ids from queue i's head (already popped) into its started registry and in-flight set
local function take(i, ids, started, expiring)
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
end

-- claim up to `wanted` live ids from the head of a queue that holds expired ids,
-- dropping the expired ones met on the way (at most DROP_BUDGET); returns how many
-- were claimed and whether the budget ran out
local function take_skipping_expired(i, queue, started, expiring, wanted)
  local got, dropped = 0, 0
  local window = math.min(wanted, CHUNK)  -- grows to CHUNK once expired ids show up
  while got < wanted and dropped < DROP_BUDGET do
    local ids = redis.call('LRANGE', queue, 0, window - 1)
    if #ids == 0 then
      break
    end
    -- bounded: a window of at most CHUNK ids
    local scores = redis.call('ZMSCORE', expiring, unpack(ids))
    local live, expired = {}, {}
    local used = 0
    for j = 1, #ids do
      if got + #live >= wanted or dropped + #expired >= DROP_BUDGET then
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
    take(i, live, started, expiring)
    got, dropped = got + #live, dropped + #expired
  end
  return got, dropped >= DROP_BUDGET
end

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

-- claim from queue i (not paused), keep its wake token true, peek at what it holds next
local function serve(i, queue, started, expiring, wake)
  if want > 0 then
    if redis.call('ZCOUNT', expiring, '-inf', now) > 0 then
      local got, out_of_budget = take_skipping_expired(i, queue, started, expiring, want)
      want = want - got
      if out_of_budget then
        cut_short = cut_short + 1
      end
    else
      local ids = redis.call('LPOP', queue, want)
      if ids then
        take(i, ids, started, expiring)
        want = want - #ids
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

for i = 0, n - 1 do
  local queue, started, expiring, wake = KEYS[4 * i + 1], KEYS[4 * i + 2], KEYS[4 * i + 3], KEYS[4 * i + 4]
  if is_paused(i) then
    redis.call('DEL', wake)  -- claimed from again once unpaused (unpause.lua pushes a token)
  else
    serve(i, queue, started, expiring, wake)
  end
end
return {claimed, peeked, cut_short}

-- One bounded step of Queue.purge_expired(): drop the expired ids (ttl ran out while
-- queued) found among ARGV[3] (at most 1,000) queue entries from position ARGV[2] on.
-- Each is overwritten in place with a tombstone (LSET), then one LREM, which stops at
-- the last of them, takes the tombstones out: a step costs O(position + window), never
-- a scan of the whole list per id.
-- KEYS: 1 queue, 2 expiring. ARGV: 1 now, 2 position, 3 window
-- Returns {the queue's length without its expired ids, where the next step looks
-- (-1: nothing expired is left, or the end of the list was reached)}.
local TOMBSTONE = ':expired:'  -- never a job id (ids cannot hold ':')
local queue, expiring = KEYS[1], KEYS[2]
local now, offset, window = ARGV[1], tonumber(ARGV[2]), math.min(tonumber(ARGV[3]), 1000)
local now_n = tonumber(now)
local stale = redis.call('ZCOUNT', expiring, '-inf', now)
if stale == 0 then
  return {redis.call('LLEN', queue), -1}
end
local ids = redis.call('LRANGE', queue, offset, offset + window - 1)
if #ids == 0 then
  return {math.max(redis.call('LLEN', queue) - stale, 0), -1}
end
-- bounded: a window of at most 1,000 ids
local scores = redis.call('ZMSCORE', expiring, unpack(ids))
local expired = {}
for j = 1, #ids do
  if scores[j] and tonumber(scores[j]) <= now_n then
    redis.call('LSET', queue, offset + j - 1, TOMBSTONE)
    expired[#expired + 1] = ids[j]
  end
end
if #expired > 0 then
  local len = redis.call('LLEN', queue)
  -- from the nearer end of the list: LREM stops once it removed #expired of them
  if offset < len - offset - #ids then
    redis.call('LREM', queue, #expired, TOMBSTONE)
  else
    redis.call('LREM', queue, -#expired, TOMBSTONE)
  end
  -- bounded: ids of one window
  redis.call('ZREM', expiring, unpack(expired))
  stale = stale - #expired
end
local len = redis.call('LLEN', queue)
local next_offset = offset + #ids - #expired
if stale == 0 or next_offset >= len then
  next_offset = -1
end
return {math.max(len - stale, 0), next_offset}

-- Sort the ids of a worker's in-flight set that the worker does not hold (see
-- worker/recovery.py lost_claims): an id whose job is still 'queued' (claimed, not
-- started) or 'started' is a lost claim, answered with its queue; any other (the hash
-- is gone, ended, has no origin, or is not a job hash) leaves the set in this same
-- step, so a job that a concurrent transition brings back is never dropped by mistake.
-- KEYS: 1 in-flight set, then per id: its job hash
-- ARGV: the ids
-- Returns {lost: id, queue, id, queue, ...}, {dropped ids}
local lost, dropped = {}, {}
for i = 1, #ARGV do
  local id = ARGV[i]
  if redis.call('SISMEMBER', KEYS[1], id) == 1 then
    local fields = redis.pcall('HMGET', KEYS[i + 1], 'origin', 'status')
    local origin, status = false, false
    if type(fields) == 'table' and not fields.err then
      origin, status = fields[1], fields[2]
    end
    if type(origin) == 'string' and (status == 'queued' or status == 'started') then
      lost[#lost + 1] = id
      lost[#lost + 1] = origin
    else
      redis.call('SREM', KEYS[1], id)
      dropped[#dropped + 1] = id
    end
  end
end
return {lost, dropped}

-- One step of Queue.empty(): delete the hashes of the first ids of the `emptying` list
-- (see empty.lua) and take those ids off it.
-- KEYS: 1 emptying, then the hash of each id in ARGV
-- ARGV: the first ids of the list as the caller read them (at most 1,000)
-- Returns how many jobs were deleted, or -1 when the list no longer starts with ARGV
-- (a concurrent empty() of the same queue took them): the caller reads it again.
-- Only a hash still `queued` is deleted: a job set aside and canceled (or deleted)
-- since is left as it is.
local head = redis.call('LRANGE', KEYS[1], 0, #ARGV - 1)
if #head ~= #ARGV then
  return -1
end
for i = 1, #ARGV do
  if head[i] ~= ARGV[i] then
    return -1
  end
end
local deleted = 0
for i = 1, #ARGV do
  if redis.call('HGET', KEYS[i + 1], 'status') == 'queued' then
    redis.call('DEL', KEYS[i + 1])
    deleted = deleted + 1
  end
end
redis.call('LTRIM', KEYS[1], #ARGV, -1)
return deleted

-- Remove every queued job of a queue, deleting their hashes. Returns how many.
-- KEYS: 1 queue, 2 expiring, 3 wake, then the hash of every id in the queue
-- ARGV: the ids the caller read from the queue (it retries if the queue changed)
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
if #ids ~= #ARGV then
  return -1
end
for i = 1, #ids do
  if ids[i] ~= ARGV[i] then
    return -1
  end
end
for i = 4, #KEYS do
  redis.call('DEL', KEYS[i])
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return #ARGV

-- Drop queued ids whose ttl has run out, then answer the length of the queue.
-- KEYS: 1 queue, 2 expiring. ARGV: 1 now
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if #expired > 0 then
  for _, id in ipairs(expired) do
    redis.call('LREM', KEYS[1], 0, id)
  end
  redis.call('ZREM', KEYS[2], unpack(expired))
end
return redis.call('LLEN', KEYS[1])

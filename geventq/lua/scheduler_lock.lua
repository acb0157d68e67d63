-- The lock that makes one scheduler active per Redis.
-- KEYS: 1 lock. ARGV: 1 holder name, 2 'hold' or 'release', 3 ttl in milliseconds
-- 'hold' takes the lock when free and renews it when ours: 1 when we hold it, else 0.
-- 'release' deletes it only when ours.
local holder = redis.call('GET', KEYS[1])
if ARGV[2] == 'release' then
  if holder == ARGV[1] then
    redis.call('DEL', KEYS[1])
    return 1
  end
  return 0
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 1
end
return 0

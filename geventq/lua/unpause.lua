-- Unpause a queue: take its name out of the paused set and, when it holds jobs, push its
-- wake token, so that an idle worker claims from it at once (a claim deleted the token
-- while the queue was paused).
-- KEYS: paused set, queue, wake
-- ARGV: 1 queue name
-- Returns 1 when the queue was paused, else 0.
local removed = redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('LLEN', KEYS[2]) > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return removed

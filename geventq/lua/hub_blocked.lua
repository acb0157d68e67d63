-- Record that a running job blocked the gevent hub (written by the hub guard).
-- Only existing hashes are touched: a job that has just ended and expired, or a
-- worker whose heartbeat lapsed, is not brought back without a ttl.
-- KEYS: 1 job, 2 worker, 3 (optional) the deployment's metric totals
-- ARGV: 1 seconds the job has blocked the hub in all, 2 1 to count a new event on the worker
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'hub_blocked', ARGV[1])
end
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'hub_blocked', 1)
end
if ARGV[2] == '1' and KEYS[3] then  -- geventq_hub_blocked_total: never goes down
  redis.call('HINCRBY', KEYS[3], 'hub_blocked', 1)
end
return 1

-- First step of Queue.empty(): move every id the queue holds now aside, into its
-- `emptying` list, in O(1) (RENAME); jobs enqueued from then on go to a fresh list and
-- stay. empty_drain.lua then deletes the hashes of the ids set aside, a batch per call,
-- so neither step's cost grows with the queue, and a busy queue cannot make it retry.
-- KEYS: 1 queue, 2 expiring, 3 wake, 4 emptying
-- Returns 'busy' when an earlier empty() left ids aside that are not deleted yet (the
-- caller drains those first, then calls again), else 'moved'.
if redis.call('EXISTS', KEYS[4]) == 1 then
  return 'busy'
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[4])
end
-- every id in `expiring` was in the queue: none is queued any more
redis.call('DEL', KEYS[2], KEYS[3])
return 'moved'

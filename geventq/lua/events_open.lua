-- Start listening to a job's events (job.events): answer its status ('' when the job
-- hash is gone), the id of the stream's last entry ('0-0' when there is none) and its
-- stored progress ('' when none): the
-- listener replays the stream up to there and follows it from there. While the job has
-- not ended, make sure its events stream exists, so that the end script, which adds the
-- end event only to a stream that exists, cannot end the job unseen (an empty stream is
-- made by adding an entry and trimming it away).
-- KEYS: 1 job, 2 its events stream
-- ARGV: 1 seconds the stream lives unless the job ends first
local status = redis.call('HGET', KEYS[1], 'status') or ''
local kind = redis.call('TYPE', KEYS[2]).ok
if kind ~= 'none' and kind ~= 'stream' then
  return redis.error_reply('the events key ' .. KEYS[2] .. ' holds a ' .. kind .. ', not a stream')
end
local ended = status == '' or status == 'finished' or status == 'failed'
  or status == 'stopped' or status == 'canceled'
local last = '0-0'
if kind == 'stream' then
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if #top > 0 then
    last = top[1][1]
  end
elseif not ended then
  last = redis.call('XADD', KEYS[2], '*', 'event', 'open')
  redis.call('XTRIM', KEYS[2], 'MAXLEN', 0)
end
if not ended then
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return {status, last, redis.call('HGET', KEYS[1], 'progress') or ''}

-- Store a running job's progress and publish it, in one step (job.set_progress).
-- Only a started job takes progress: a job that has ended (or was canceled) keeps its
-- last progress and its events stream is not brought back.
-- KEYS: 1 job, 2 its events stream
-- ARGV: 1 percent, 2 message, 3 '1' when there is a message, 4 now, 5 the JSON stored in
--       the job's 'progress' field, 6 seconds the stream lives unless the job ends first,
--       7 entries the stream keeps (about)
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'started' then
  return status or ''
end
local kind = redis.call('TYPE', KEYS[2]).ok
if kind ~= 'none' and kind ~= 'stream' then
  return redis.error_reply('the events key ' .. KEYS[2] .. ' holds a ' .. kind .. ', not a stream')
end
redis.call('HSET', KEYS[1], 'progress', ARGV[5])
if ARGV[3] == '1' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'event', 'progress',
    'percent', ARGV[1], 'at', ARGV[4], 'message', ARGV[2])
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'event', 'progress',
    'percent', ARGV[1], 'at', ARGV[4])
end
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 'started'

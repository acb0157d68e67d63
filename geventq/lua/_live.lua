-- The statuses of a job that has not ended (status.LIVE_STATUSES, kept equal by
-- tests/test_transitions.py). HGET's nil (false) or any other value is not live.
-- scripts.py prepends this file to every script that uses it or _common.lua; it is kept
-- apart from _common.lua so that enqueue_batch.lua (the enqueue hot path) does not define
-- _common's functions on every call.
local LIVE_STATUSES = {queued = true, started = true, deferred = true, scheduled = true}

local function is_live(status)
  return type(status) == 'string' and LIVE_STATUSES[status] == true
end

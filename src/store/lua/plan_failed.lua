-- Marks a goal that could not be planned as failed, unless it has a plan by now.
-- KEYS, ARGV: see lib.lua. ARG: reason. Returns {'ok'} | {'planned'}.
if redis.call('HEXISTS', GOAL, 'fingerprint') == 1 then return {'planned'} end
local now = now_ms()
redis.call('HSET', GOAL, 'status', 'failed', 'last_error', ARG[1], 'finished_at', now,
  'created_at', now, 'total', 0)
redis.call(PUBLISH, EVENTS, 'goal failed')
return {'ok'}

-- Records a failed attempt. KEYS, ARGV: see lib.lua; the task is declared.
-- ARG: task, token, fence, error, retryable 0/1, backoff ms.
-- Returns {'retrying'} | {'failed'} | {'lost'}.
local id, token, fence, err, retryable, backoff = ARG[1], ARG[2], ARG[3], ARG[4], ARG[5], tonumber(ARG[6])
if not holds(id, token, fence) then return {'lost'} end
local now = now_ms()
redis.call('DEL', lock_key(id))
redis.call('SREM', RUNNING, id)
local attempt = tonumber(redis.call('HGET', task_key(id), 'attempt'))
if retryable == '1' and attempt < max_attempts() then
  -- READY but backing off: it waits in DELAYED until claim promotes it.
  redis.call('HSET', task_key(id), 'status', 'READY', 'last_error', err, 'retry_at', now + backoff,
    'lease_expires', 0, 'updated_at', now)
  redis.call('ZADD', DELAYED, now + backoff, id)
  redis.call(PUBLISH, EVENTS, 'retry ' .. id)
  return {'retrying'}
end
fail_for_good(id, err, now)
return {'failed'}

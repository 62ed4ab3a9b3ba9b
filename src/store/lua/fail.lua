-- Records a failed attempt. ARGV: G, task, token, fence, error, retryable 0/1, backoff ms.
-- Returns {'retrying'} | {'failed'} | {'lost'}.
local id, token, fence, err, retryable, backoff = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
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
  redis.call('PUBLISH', EVENTS, 'retry ' .. id)
  return {'retrying'}
end
fail_for_good(id, err, now)
return {'failed'}

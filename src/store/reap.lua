-- Returns RUNNING tasks whose lock key is gone to READY, or FAILED at max attempts.
-- Only a missing lock counts: Redis expired it, so no clock is compared here. ARGV: G.
-- Returns {requeued ids, failed ids}.
local requeued, failed = {}, {}
local now = nil
for _, id in ipairs(redis.call('SMEMBERS', RUNNING)) do
  if redis.call('EXISTS', lock_key(id)) == 0 then
    now = now or now_ms()
    redis.call('SREM', RUNNING, id)
    local attempt = tonumber(redis.call('HGET', task_key(id), 'attempt'))
    if attempt >= max_attempts() then
      fail_for_good(id, 'RUNNING', 'lease expired on attempt ' .. attempt .. ' (max attempts reached)', now)
      failed[#failed + 1] = id
    else
      set_status(id, 'RUNNING', 'READY', now)
      redis.call('HSET', task_key(id), 'last_error', 'lease expired on attempt ' .. attempt)
      redis.call('HDEL', task_key(id), 'lease_expires')
      index_ready(id)
      requeued[#requeued + 1] = id
    end
  end
end
if #requeued > 0 then redis.call('PUBLISH', EVENTS, 'ready') end
return {requeued, failed}

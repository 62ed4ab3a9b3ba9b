-- Returns RUNNING tasks whose lock key is gone to READY, or FAILED at max attempts.
-- Only a missing lock counts: Redis expired it, so no clock is compared here.
-- KEYS, ARGV: see lib.lua; every RUNNING task must be declared, else nothing is
-- written (the answer lists every RUNNING task, the caller's hint for the next
-- reap). Returns {requeued ids, failed ids} | {'need', ...}.
local running = redis.call('SMEMBERS', RUNNING)
if #running == 0 then return {{}, {}} end
for _, id in ipairs(running) do want(id) end
want_roles()
if wanting() then return need(running) end
-- A merge task failing for good fails the task waiting for it.
for _, id in ipairs(running) do want_merge_subject(id) end
if wanting() then return need(running) end
local requeued, failed = {}, {}
local now, max = nil, nil
for _, id in ipairs(running) do
  if redis.call('EXISTS', lock_key(id)) == 0 then
    now = now or now_ms()
    max = max or max_attempts()
    redis.call('SREM', RUNNING, id)
    local f = redis.call('HMGET', task_key(id), 'attempt', 'role', 'priority', 'rank')
    local attempt = tonumber(f[1])
    if attempt >= max then
      fail_for_good(id, 'lease expired on attempt ' .. attempt .. ' (max attempts reached)', now)
      failed[#failed + 1] = id
    else
      redis.call('HSET', task_key(id), 'status', 'READY',
        'last_error', 'lease expired on attempt ' .. attempt, 'lease_expires', 0, 'updated_at', now)
      index_ready(id, f[2], f[3], f[4])
      requeued[#requeued + 1] = id
    end
  end
end
if #requeued > 0 then redis.call(PUBLISH, EVENTS, 'ready') end
return {requeued, failed}

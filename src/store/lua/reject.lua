-- A person rejects a task AWAITING_APPROVAL: as a review asking for changes, a
-- fix task carries the reason, for the role of the work (a review's reviewed
-- task). The rejected task waits for the fix; then a work task awaits approval
-- again, and a review runs again (and then awaits approval).
-- KEYS, ARGV: see lib.lua; the task, its work task and the fix are declared.
-- ARG: task, reason. Returns {'ok', fix id} | {'no_task'} | {'state', status} | {'need', ...}.
local id, reason = ARG[1], ARG[2]
local t = redis.call('HMGET', task_key(id), 'status', 'kind', 'of')
if not t[1] then return {'no_task'} end
if t[1] ~= 'AWAITING_APPROVAL' then return {'state', t[1]} end
local base = id
if t[2] == 'review' then base = t[3] end
-- The work's hash numbers the next fix: it is read only once declared.
want(base)
if wanting() then return need() end
local fix, n = next_fix(base)
want(fix)
want_roles()
if wanting() then return need() end
local now = now_ms()
redis.call('HINCRBY', GOAL, 'awaiting', -1)
redis.call('HSET', task_key(id), 'status', 'BLOCKED', 'notes', reason, 'updated_at', now)
if t[2] == 'review' then
  redis.call('HSET', task_key(id), 'attempt', 0)
else
  redis.call('HSET', task_key(id), 'return_to', 'AWAITING_APPROVAL')
end
add_fix(base, fix, n, reason, id, now)
return {'ok', fix}

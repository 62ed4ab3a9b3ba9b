-- A person rejects a task AWAITING_APPROVAL: as a review asking for changes, a
-- fix task carries the reason, for the role of the work (a review's reviewed
-- task). The rejected task waits for the fix; then a work task awaits approval
-- again, and a review runs again (and then awaits approval). The fix is named
-- after the planned task (`x.fix-<n>`, also for a rejected recovery `x.recover`).
-- KEYS, ARGV: see lib.lua; the task, its work task, the planned task and the fix
-- are declared. ARG: task, reason.
-- Returns {'ok', fix id} | {'no_task'} | {'state', status} | {'need', ...}.
local id, reason = ARG[1], ARG[2]
local t = redis.call('HMGET', task_key(id), 'status', 'kind', 'of')
if not t[1] then return {'no_task'} end
if t[1] ~= 'AWAITING_APPROVAL' then return {'state', t[1]} end
local subject = id
if t[2] == 'review' then subject = t[3] end
-- The work's hash names the planned task, whose hash numbers the next fix:
-- each is read only once declared.
want(subject)
if wanting() then return need() end
local planned = planned_of(subject)
want(planned)
if wanting() then return need() end
local fix, n = next_fix(planned)
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
add_fix(subject, planned, fix, n, reason, id, now)
return {'ok', fix}

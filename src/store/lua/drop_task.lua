-- Cancels a task: FAILED with a reason, lease revoked (fence bumped, lock deleted);
-- a merge task fails the task waiting for it too (fail_lib.lua).
-- KEYS, ARGV: see lib.lua; the task is declared. ARG: task, reason.
-- Returns {'ok'} | {'no_task'} | {'state', status} | {'need', ...}.
local id, reason = ARG[1], ARG[2]
local f = redis.call('HMGET', task_key(id), 'status', 'role')
local status = f[1]
if not status then return {'no_task'} end
if status == 'DONE' then return {'state', status} end
if status == 'FAILED' then return {'ok'} end
want_roles()
want_merge_subject(id)
if wanting() then return need() end
local now = now_ms()
unindex_ready(id, f[2])
if status == 'AWAITING_APPROVAL' then redis.call('HINCRBY', GOAL, 'awaiting', -1) end
redis.call('SREM', RUNNING, id)
redis.call('DEL', lock_key(id))
redis.call('HINCRBY', task_key(id), 'fence', 1)
fail_for_good(id, reason, now)
return {'ok'}

-- A person approves a task AWAITING_APPROVAL: DONE, its dependents move on.
-- KEYS, ARGV: see lib.lua; the task and its dependents are declared. ARG: task.
-- Returns a completion's reply {'ok', goal complete 0/1, promoted...} (see
-- complete_lib.lua) | {'no_task'} | {'state', status} | {'need', ...}.
local id = ARG[1]
local status = redis.call('HGET', task_key(id), 'status')
if not status then return {'no_task'} end
if status ~= 'AWAITING_APPROVAL' then return {'state', status} end
local dependents = want_dependents(id)
if wanting() then return need() end
local now = now_ms()
redis.call('HSET', task_key(id), 'status', 'DONE', 'finished_at', now, 'updated_at', now)
redis.call('HINCRBY', GOAL, 'awaiting', -1)
return finish_done(dependents, now)

-- Changes a task's priority and re-scores it if it sits in a READY index.
-- KEYS, ARGV: see lib.lua; the task is declared. ARG: task, priority.
-- Returns {'ok'} | {'no_task'} | {'need', ...}.
local id, priority = ARG[1], tonumber(ARG[2])
local fields = redis.call('HMGET', task_key(id), 'status', 'role', 'rank')
if not fields[1] then return {'no_task'} end
want_roles()
if wanting() then return need() end
redis.call('HSET', task_key(id), 'priority', priority, 'updated_at', now_ms())
redis.call('ZADD', ready_key(fields[2]), 'XX', ready_score(priority, fields[3]), id)
return {'ok'}

-- Puts a FAILED task back with attempts reset: READY, or BLOCKED if a dependency is
-- unfinished. The goal is active again once no task is FAILED.
-- KEYS, ARGV: see lib.lua; the task is declared. ARG: task.
-- A task a recovery took over stays FAILED: the recovery is what to retry. A
-- retried review asks for changes up to its cycles again (its cycle count is reset).
-- Returns {'ok', new status} | {'no_task'} | {'state', status} | {'superseded',
-- recovery id} | {'need', ...}.
local id = ARG[1]
local f = redis.call('HMGET', task_key(id), 'status', 'pending', 'role', 'priority', 'recovered_by',
  'kind', 'rank')
local status = f[1]
if not status then return {'no_task'} end
if status ~= 'FAILED' then return {'state', status} end
if f[5] then return {'superseded', f[5]} end
want_roles()
if wanting() then return need() end
local now = now_ms()
local to = 'READY'
if tonumber(f[2]) > 0 then to = 'BLOCKED' end
redis.call('HSET', task_key(id), 'status', to, 'attempt', 0, 'updated_at', now)
redis.call('HDEL', task_key(id), 'finished_at', 'retry_at', 'owner')
-- A person's retry grants a review its cycles again.
if f[6] == 'review' then redis.call('HSET', task_key(id), 'cycle', 0) end
if to == 'READY' then index_ready(id, f[3], f[4], f[7]) end
if redis.call('HINCRBY', GOAL, 'count_failed', -1) <= 0 then
  redis.call('HSET', GOAL, 'status', 'active')
  redis.call('HDEL', GOAL, 'finished_at')
end
redis.call(PUBLISH, EVENTS, 'ready ' .. id)
return {'ok', to}

-- Puts a FAILED task back with attempts reset: READY, or BLOCKED if a dependency is
-- unfinished. The goal is active again once no task is FAILED.
-- ARGV: G, task. Returns {'ok', new status} | {'no_task'} | {'state', status}.
local id = ARGV[2]
local status = redis.call('HGET', task_key(id), 'status')
if not status then return {'no_task'} end
if status ~= 'FAILED' then return {'state', status} end
local now = now_ms()
local to = 'READY'
if tonumber(redis.call('HGET', task_key(id), 'pending')) > 0 then to = 'BLOCKED' end
set_status(id, 'FAILED', to, now)
redis.call('HSET', task_key(id), 'attempt', 0)
redis.call('HDEL', task_key(id), 'finished_at', 'retry_at', 'owner')
if to == 'READY' then index_ready(id) end
if tonumber(redis.call('HGET', GOAL, 'count_failed')) == 0 then
  redis.call('HSET', GOAL, 'status', 'active')
  redis.call('HDEL', GOAL, 'finished_at')
end
redis.call('PUBLISH', EVENTS, 'ready ' .. id)
return {'ok', to}

-- Cancels a task: FAILED with a reason, lease revoked (fence bumped, lock deleted).
-- ARGV: G, task, reason. Returns {'ok'} | {'no_task'} | {'state', status}.
local id, reason = ARGV[2], ARGV[3]
local f = redis.call('HMGET', task_key(id), 'status', 'role')
local status = f[1]
if not status then return {'no_task'} end
if status == 'DONE' then return {'state', status} end
if status == 'FAILED' then return {'ok'} end
local now = now_ms()
unindex_ready(id, f[2])
redis.call('SREM', RUNNING, id)
redis.call('DEL', lock_key(id))
redis.call('HINCRBY', task_key(id), 'fence', 1)
fail_for_good(id, reason, now)
return {'ok'}

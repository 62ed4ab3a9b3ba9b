-- Cancels a task: FAILED with a reason, lease revoked (fence bumped, lock deleted).
-- ARGV: G, task, reason. Returns {'ok'} | {'no_task'} | {'state', status}.
local id, reason = ARGV[2], ARGV[3]
local status = redis.call('HGET', task_key(id), 'status')
if not status then return {'no_task'} end
if status == 'DONE' then return {'state', status} end
if status == 'FAILED' then return {'ok'} end
local now = now_ms()
unindex_ready(id)
redis.call('SREM', RUNNING, id)
redis.call('DEL', lock_key(id))
redis.call('HINCRBY', task_key(id), 'fence', 1)
fail_for_good(id, status, reason, now)
return {'ok'}

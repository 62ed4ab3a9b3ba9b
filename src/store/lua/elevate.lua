-- Changes a task's priority and re-scores it if it sits in a READY index.
-- ARGV: G, task, priority. Returns {'ok'} | {'no_task'}.
local id, priority = ARGV[2], tonumber(ARGV[3])
local fields = redis.call('HMGET', task_key(id), 'status', 'role')
if not fields[1] then return {'no_task'} end
redis.call('HSET', task_key(id), 'priority', priority, 'updated_at', now_ms())
redis.call('ZADD', ready_key(fields[2]), 'XX', -priority, id)
return {'ok'}

-- Gives a held task back to READY without counting the attempt. ARGV: G, task, token, fence.
-- Returns {'ok'} | {'lost'}.
local id, token, fence = ARGV[2], ARGV[3], ARGV[4]
if not holds(id, token, fence) then return {'lost'} end
local now = now_ms()
redis.call('DEL', lock_key(id))
redis.call('SREM', RUNNING, id)
redis.call('HINCRBY', task_key(id), 'attempt', -1)
redis.call('HDEL', task_key(id), 'lease_expires')
set_status(id, 'RUNNING', 'READY', now)
index_ready(id)
redis.call('PUBLISH', EVENTS, 'ready ' .. id)
return {'ok'}

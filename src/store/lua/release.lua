-- Gives a held task back to READY without counting the attempt. ARGV: G, task, token, fence.
-- Returns {'ok'} | {'lost'}.
local id, token, fence = ARGV[2], ARGV[3], ARGV[4]
if not holds(id, token, fence) then return {'lost'} end
local now = now_ms()
redis.call('DEL', lock_key(id))
redis.call('SREM', RUNNING, id)
local f = redis.call('HMGET', task_key(id), 'attempt', 'role', 'priority')
redis.call('HSET', task_key(id), 'status', 'READY', 'attempt', tonumber(f[1]) - 1,
  'lease_expires', 0, 'updated_at', now)
index_ready(id, f[2], f[3])
redis.call('PUBLISH', EVENTS, 'ready ' .. id)
return {'ok'}

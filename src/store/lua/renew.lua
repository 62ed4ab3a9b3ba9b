-- Extends a lease. KEYS, ARGV: see lib.lua; the task is declared.
-- ARG: task, token, fence, ttl ms. Returns {'ok'} | {'lost'}.
local id, token, fence, ttl = ARG[1], ARG[2], ARG[3], tonumber(ARG[4])
if not holds(id, token, fence) then return {'lost'} end
redis.call('PEXPIRE', lock_key(id), ttl)
redis.call('HSET', task_key(id), 'lease_expires', now_ms() + ttl)
return {'ok'}

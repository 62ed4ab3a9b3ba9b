-- Extends a lease. ARGV: G, task, token, fence, ttl ms. Returns {'ok'} | {'lost'}.
local id, token, fence, ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if not holds(id, token, fence) then return {'lost'} end
redis.call('PEXPIRE', lock_key(id), ttl)
redis.call('HSET', task_key(id), 'lease_expires', now_ms() + ttl)
return {'ok'}

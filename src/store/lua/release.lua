-- Gives a held task back to READY without counting the attempt. ARGV: G, task, token, fence.
-- Returns {'ok'} | {'lost'}.
local id, token, fence = ARGV[2], ARGV[3], ARGV[4]
if not holds(id, token, fence) then return {'lost'} end
release_task(id, now_ms())
redis.call('PUBLISH', EVENTS, 'ready ' .. id)
return {'ok'}

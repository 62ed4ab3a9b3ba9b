-- Gives a held task back to READY without counting the attempt.
-- KEYS, ARGV: see lib.lua; the task is declared. ARG: task, token, fence.
-- Returns {'ok'} | {'lost'} | {'need', ...}.
local id, token, fence = ARG[1], ARG[2], ARG[3]
if not holds(id, token, fence) then return {'lost'} end
want_roles()
if wanting() then return need() end
release_task(id, now_ms())
redis.call(PUBLISH, EVENTS, 'ready ' .. id)
return {'ok'}

-- A rate or usage limit: gives a held task back (as release.lua) and makes the
-- whole goal wait, so no agent of it claims until the limit resets. A later
-- backoff extends the wait, never shortens it.
-- KEYS, ARGV: see lib.lua; the task is declared. ARG: task, token, fence, wait ms,
-- reason. Returns {'ok', until ms} | {'lost'} | {'need', ...}.
local id, token, fence = ARG[1], ARG[2], ARG[3]
if not holds(id, token, fence) then return {'lost'} end
want_roles()
if wanting() then return need() end
local now = now_ms()
release_task(id, now)
local wanted = now + tonumber(ARG[4])
local current = tonumber(redis.call('HGET', GOAL, 'backoff_until')) or 0
if wanted > current then
  redis.call('HSET', GOAL, 'backoff_until', wanted, 'backoff_reason', ARG[5])
else
  wanted = current
end
return {'ok', tostring(wanted)}

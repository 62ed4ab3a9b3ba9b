-- A rate or usage limit: gives a held task back (as release.lua) and makes the
-- whole goal wait, so no agent of it claims until the limit resets. A later
-- backoff extends the wait, never shortens it.
-- ARGV: G, task, token, fence, wait ms, reason. Returns {'ok', until ms} | {'lost'}.
local id, token, fence = ARGV[2], ARGV[3], ARGV[4]
if not holds(id, token, fence) then return {'lost'} end
local now = now_ms()
release_task(id, now)
local wanted = now + tonumber(ARGV[5])
local current = tonumber(redis.call('HGET', GOAL, 'backoff_until')) or 0
if wanted > current then
  redis.call('HSET', GOAL, 'backoff_until', wanted, 'backoff_reason', ARGV[6])
else
  wanted = current
end
redis.call('PUBLISH', EVENTS, 'backoff ' .. id)
return {'ok', tostring(wanted)}

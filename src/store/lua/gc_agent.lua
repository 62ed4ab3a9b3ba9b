-- Removes a dead agent's keys past the retention (porki gc). KEYS:
-- agent:{NAME}:registered, :heartbeat, :active, :errors, :heartbeat_cursor,
-- then its other values (keys::agent_keys). ARGV: retention ms, dry run ('1':
-- change nothing), keep cursor ('1': its heartbeat file still exists, so the
-- cursor stays, and with it where the agent was in that file).
-- Alive: someone holds its guard (:active), or it is registered `running` with a
-- live heartbeat key (which only earlier versions wrote). Otherwise it is dead,
-- since `changed_at` (written with every registration) when the registration is not `running`, or since `dead_since`
-- when it is (its process died without saying so): the first sweep to find it
-- dead without that time records it (now), and a sweep that finds it alive
-- drops `dead_since`. `agents` is another slot: the caller takes the name off it
-- (unless the cursor stays).
-- Returns {'gone'} (no registration; what was left of it is removed) |
-- {'kept', why} | {'removed' or 'would', state, age ms}.
local REGISTERED, HEARTBEAT, ACTIVE, CURSOR = KEYS[1], KEYS[2], KEYS[3], KEYS[5]
local dry, keep_cursor = ARGV[2] == '1', ARGV[3] == '1'
local function remove()
  for i = 1, #KEYS do
    if not (keep_cursor and KEYS[i] == CURSOR) then redis.call('DEL', KEYS[i]) end
  end
end
local f = redis.call('HMGET', REGISTERED, 'state', 'changed_at', 'dead_since')
local state = f[1]
if not state then
  if keep_cursor and redis.call('EXISTS', CURSOR) == 1 then return {'kept', 'cursor'} end
  if not dry then remove() end
  return {'gone'}
end
local running = state == 'running'
if redis.call('EXISTS', ACTIVE) == 1 or (running and redis.call('EXISTS', HEARTBEAT) == 1) then
  if f[3] then redis.call('HDEL', REGISTERED, 'dead_since') end
  return {'kept', 'alive'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local field, since = 'changed_at', tonumber(f[2])
if running then field, since = 'dead_since', tonumber(f[3]) end
if not since then
  since = now
  if not dry then redis.call('HSET', REGISTERED, field, now) end
end
local age = now - since
if age < tonumber(ARGV[1]) then return {'kept', 'recent'} end
if dry then return {'would', state, tostring(age)} end
remove()
return {'removed', state, tostring(age)}

-- Releases a goal's merge lock if TOKEN holds it (see merge_lock.lua).
-- KEYS: goal:{G}:merge. ARGV: token. Returns 1 | 0.
local held = redis.call('GET', KEYS[1])
if not held or string.match(held, '^(%S+)') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1

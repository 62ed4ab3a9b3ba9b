-- Takes agent:{NAME}:active for TOKEN if nobody holds it (or TOKEN already
-- does). Never extends another holder's guard: a process waiting for the name
-- must let a dead holder's guard expire. KEYS: guard. ARGV: token, ttl ms.
-- Returns 1 | 0.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1

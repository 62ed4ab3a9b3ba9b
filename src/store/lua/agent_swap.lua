-- Sets agent:{NAME}:FIELD to ARGV[2] only if it still holds ARGV[1] ('' = absent).
-- KEYS: the field key. Returns 1 | 0.
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1

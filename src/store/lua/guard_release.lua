-- Deletes agent:{NAME}:active if TOKEN holds it. KEYS: guard. ARGV: token. Returns 1 | 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1

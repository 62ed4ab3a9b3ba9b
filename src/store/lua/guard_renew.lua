-- Extends agent:{NAME}:active if TOKEN holds it. KEYS: guard. ARGV: token, ttl ms. Returns 1 | 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1

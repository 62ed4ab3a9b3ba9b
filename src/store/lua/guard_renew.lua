-- Extends agent:{NAME}:active if TOKEN holds it, and refreshes the agent's
-- heartbeat key with it (one round trip for an idle agent's upkeep).
-- KEYS: guard, heartbeat. ARGV: token, ttl ms. Returns 1 | 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], 'alive', 'PX', ARGV[2])
return 1

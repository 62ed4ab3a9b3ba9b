-- Registers an agent: its registration hash, replaced whole. KEYS: agent:{NAME}:registered.
-- ARGV: field/value pairs. (The `agents` set is added to by a separate SADD: it is
-- process-wide, in another slot.)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV))
return 'ok'

-- Registers an agent. KEYS: agents, agent:NAME:registered. ARGV: name, then field/value pairs.
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
return 'ok'

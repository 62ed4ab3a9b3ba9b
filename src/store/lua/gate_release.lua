-- Frees an LLM call slot and takes its token out of the wait queue.
-- KEYS: llm:gate, {llm:gate}:queue, {llm:gate}:seen. ARGV: token. Returns 0.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 0

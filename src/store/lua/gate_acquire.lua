-- Takes an LLM call slot, or queues the caller for one.
-- KEYS: llm:gate, {llm:gate}:queue, {llm:gate}:seen (one slot: same hash tag).
-- ARGV: token, cap (0 = none), slot ttl ms, head start ms, alive-for ms.
-- llm:gate: holders by slot expiry; queue: waiters by place (first attempt's
-- time less their head start); seen: waiters by when they stop counting as alive.
-- Expired slots and waiters that stopped asking go first. A holder asking again
-- keeps its slot. A waiter gets a slot when fewer live waiters are ahead of it
-- than slots are free, and then leaves the queue. Returns 1 | 0.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token, cap, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local head, alive = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
  redis.call('ZREM', KEYS[2], gone)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local function grant()
  redis.call('ZADD', KEYS[1], now + ttl, token)
  redis.call('ZREM', KEYS[2], token)
  redis.call('ZREM', KEYS[3], token)
  return 1
end
if cap == 0 or redis.call('ZSCORE', KEYS[1], token) then
  return grant()
end
-- NX: a waiter keeps the place its first attempt gave it.
redis.call('ZADD', KEYS[2], 'NX', now - head, token)
redis.call('ZADD', KEYS[3], now + alive, token)
local free = cap - redis.call('ZCARD', KEYS[1])
if free > 0 and redis.call('ZRANK', KEYS[2], token) < free then
  return grant()
end
return 0

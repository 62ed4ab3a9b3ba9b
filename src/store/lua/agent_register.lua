-- Registers an agent: its registration hash, replaced whole, with `changed_at`
-- (server time, ms: when it took this state, for porki gc).
-- KEYS: agent:{NAME}:registered. ARGV: field/value pairs. (The `agents` set is
-- added to by a separate SADD: it is process-wide, in another slot.)
local t = redis.call('TIME')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'changed_at', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
  unpack(ARGV))
return 'ok'

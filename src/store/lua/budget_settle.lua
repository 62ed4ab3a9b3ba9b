-- Settles an LLM call (LlmCaller::call): drops its reservation and adds what it
-- used to the goal's totals. KEYS: goal:{G}. ARGV: reservation id ('' = none),
-- tokens, cost in USD. A call that used nothing creates no goal hash.
-- Returns the new token total.
if ARGV[1] ~= '' then redis.call('HDEL', KEYS[1], 'reserved:' .. ARGV[1]) end
local total = tonumber(redis.call('HGET', KEYS[1], 'tokens')) or 0
if tonumber(ARGV[2]) > 0 then total = redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[2]) end
if tonumber(ARGV[3]) > 0 then redis.call('HINCRBYFLOAT', KEYS[1], 'cost_usd', ARGV[3]) end
return total

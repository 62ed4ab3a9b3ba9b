-- Settles an LLM call (LlmCaller::call): drops its reservation and adds what it
-- used to the goal's totals, and when (`used_at`, see budget_reserve.lua).
-- KEYS: goal:{G}. ARGV: reservation id ('' = none), tokens, cost in USD, what
-- porki knows of the cost under a money budget: '' (no money budget),
-- 'priced' (the provider reported it: `priced_calls` and `priced_usd` grow,
-- whose mean the next call reserves) or 'unknown' (`cost_unknown` grows, so the
-- cost is never a silent zero). A call that used nothing creates no goal hash.
-- Returns {the new token total, draft 0/1}; draft: the hash exists without a
-- plan's status, so the caller lists the goal for gc.
if ARGV[1] ~= '' then redis.call('HDEL', KEYS[1], 'reserved:' .. ARGV[1]) end
local total = tonumber(redis.call('HGET', KEYS[1], 'tokens')) or 0
local mode = ARGV[4] or ''
local used = tonumber(ARGV[2]) > 0 or tonumber(ARGV[3]) > 0 or mode ~= ''
if tonumber(ARGV[2]) > 0 then total = redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[2]) end
if tonumber(ARGV[3]) > 0 then redis.call('HINCRBYFLOAT', KEYS[1], 'cost_usd', ARGV[3]) end
if mode == 'priced' then
  redis.call('HINCRBY', KEYS[1], 'priced_calls', 1)
  redis.call('HINCRBYFLOAT', KEYS[1], 'priced_usd', ARGV[3])
elseif mode == 'unknown' then
  redis.call('HINCRBY', KEYS[1], 'cost_unknown', 1)
end
local draft = 0
if used then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'used_at', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('HEXISTS', KEYS[1], 'status') == 0 then
  draft = 1
end
return {total, draft}

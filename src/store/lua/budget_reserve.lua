-- Reserves an LLM call's share of a goal's token and money budgets, in one
-- step, before the call is made (LlmCaller::call). KEYS: goal:{G}. ARGV:
-- reservation id, estimate (tokens), token budget ('' = none), ttl ms, money
-- budget in USD ('' = none), the USD a call reserves before any reported a cost.
-- The goal hash keeps `tokens` and `cost_usd` (spent) and one field
-- `reserved:ID` = 'TOKENS USD EXPIRES_MS' per call in flight ('TOKENS
-- EXPIRES_MS' from older versions: no money). Tokens are admitted while spent
-- and reserved are under the budget, so concurrent calls overshoot it by at
-- most the last admitted call. Money is admitted while spent, reserved and this
-- call's estimate stay within the budget (give or take a nanodollar of float
-- rounding: 0.8 + 0.4 fits 1.2); the estimate is the mean cost of the
-- goal's calls that reported one (`priced_usd` / `priced_calls`), else the
-- default (the budget if smaller: a goal's first call is always admitted). A
-- reservation whose process died before settling it expires; expired ones are
-- dropped here. `used_at` is when a call last reserved or settled: what
-- `porki gc` ages a draft by (a goal hash without a plan, only spending).
-- Returns {status, spent, reserved, draft 0/1, usd spent, usd reserved, usd
-- estimate} (USD as strings): status 1 reserved (reserved now, this one
-- included), 0 refused by tokens, -1 refused by money; draft: the hash has no
-- plan's status, so the caller lists the goal for gc.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local estimate, ttl = tonumber(ARGV[2]), tonumber(ARGV[4])
local budget, usd_budget = tonumber(ARGV[3]), tonumber(ARGV[5])
local spent, reserved, draft = 0, 0, 1
local usd_spent, usd_reserved, priced_calls, priced_usd = 0, 0, 0, 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local name, value = fields[i], fields[i + 1]
  if name == 'tokens' then
    spent = tonumber(value) or 0
  elseif name == 'cost_usd' then
    usd_spent = tonumber(value) or 0
  elseif name == 'priced_calls' then
    priced_calls = tonumber(value) or 0
  elseif name == 'priced_usd' then
    priced_usd = tonumber(value) or 0
  elseif name == 'status' then
    draft = 0
  elseif string.sub(name, 1, 9) == 'reserved:' then
    local amount, usd, expires = string.match(value, '^(%d+) (%S+) (%d+)$')
    if not amount then
      amount, expires = string.match(value, '^(%d+) (%d+)$')
      usd = '0'
    end
    if expires and tonumber(expires) > now then
      reserved = reserved + tonumber(amount)
      usd_reserved = usd_reserved + (tonumber(usd) or 0)
    else
      redis.call('HDEL', KEYS[1], name)
    end
  end
end
local usd = 0
if usd_budget then
  if priced_calls > 0 then
    usd = priced_usd / priced_calls
  else
    usd = math.min(tonumber(ARGV[6]), usd_budget)
  end
end
local function money(x) return string.format('%.17g', x) end
local refused = nil
if budget and spent + reserved >= budget then
  refused = 0
elseif usd_budget and usd_spent + usd_reserved + usd > usd_budget + 1e-9 then
  refused = -1
end
if refused then
  if #fields == 0 then draft = 0 end
  return {refused, spent, reserved, draft, money(usd_spent), money(usd_reserved), money(usd)}
end
redis.call('HSET', KEYS[1], 'reserved:' .. ARGV[1],
  string.format('%d %s %d', estimate, money(usd), now + ttl), 'used_at', now)
return {1, spent, reserved + estimate, draft, money(usd_spent), money(usd_reserved + usd),
  money(usd)}

-- Reserves tokens of a goal's budget for an LLM call about to be made
-- (LlmCaller::call). KEYS: goal:{G}. ARGV: reservation id, estimate (tokens),
-- budget (tokens), ttl ms.
-- The goal hash keeps `tokens` (spent) and one field `reserved:ID` =
-- 'TOKENS EXPIRES_MS' per call in flight. A call is admitted while the tokens
-- spent and reserved are under the budget, so concurrent calls overshoot it by at
-- most the last admitted call. A reservation whose process died before settling
-- it expires; expired ones are dropped here. `used_at` is when a call last
-- reserved or settled tokens: what `porki gc` ages a draft by (a goal hash
-- without a plan, only spending).
-- Returns {1, spent, reserved, draft 0/1} (reserved now, this one included) |
-- {0, spent, reserved, draft 0/1} (refused); draft: the hash has no plan's
-- status, so the caller lists the goal for gc.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local estimate, budget, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local spent, reserved, draft = 0, 0, 1
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local name = fields[i]
  if name == 'tokens' then
    spent = tonumber(fields[i + 1]) or 0
  elseif name == 'status' then
    draft = 0
  elseif string.sub(name, 1, 9) == 'reserved:' then
    local amount, expires = string.match(fields[i + 1], '^(%d+) (%d+)$')
    if expires and tonumber(expires) > now then
      reserved = reserved + tonumber(amount)
    else
      redis.call('HDEL', KEYS[1], name)
    end
  end
end
if spent + reserved >= budget then
  if #fields == 0 then draft = 0 end
  return {0, spent, reserved, draft}
end
redis.call('HSET', KEYS[1], 'reserved:' .. ARGV[1], string.format('%d %d', estimate, now + ttl),
  'used_at', now)
return {1, spent, reserved + estimate, draft}

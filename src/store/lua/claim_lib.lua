-- Claiming, for claim.lua and complete_and_claim.lua.
-- A claim sends back, as hints, the ids the next claims of the same role may
-- take: the caller declares them on its next claim (RedisStore keeps them per
-- goal and role), so a claim rarely needs keys it was not given. How many of
-- each index: after a claim, and after a claim that needed keys.
local HINTS, MORE_HINTS = 8, 16

-- The first `n` ids of the roleless index, of the role's, and of the retries
-- backing off.
local function claim_hints(role, n, roleless)
  local ids = {}
  if roleless then ids = redis.call('ZRANGE', READY, 0, n - 1) end
  if role ~= '' then
    for _, id in ipairs(redis.call('ZRANGE', ready_key(role), 0, n - 1)) do ids[#ids + 1] = id end
  end
  for _, id in ipairs(redis.call('ZRANGE', DELAYED, 0, n - 1)) do ids[#ids + 1] = id end
  return ids
end

-- Claims the highest-priority READY task for an agent (role '' for none); due
-- retries are promoted first. A role agent takes the better of its role's index
-- and the roleless one (unless `roleless` is false: a reviewer or manager takes
-- only its role's); ties go to the smaller id, as within one index. `now` is
-- the caller's server time, or nil to read it here. `preferred`, when given and
-- READY for this agent, is claimed instead of the best task (the LLM's pick).
-- While the goal backs off (a rate or usage limit, back_off.lua) nothing is
-- claimed and the wait is what is left of it. The agent's own role index must be
-- declared. Nothing is written unless every task it may take or promote was
-- declared (a promoted retry may become the best task; nothing else can).
-- Returns {'claimed', id, fence, attempt, the task's dependents JSON or '', hint
-- ids...} | {'empty', ms until next retry or ''} | {'inactive', goal status} |
-- {'no_goal'} | {'need', ..., hint ids...} (see lib.lua).
local function claim_next(agent, role, ttl, token, now, preferred, roleless)
  -- Reads the roleless index only for agents that may take its tasks.
  local any = READY
  if not roleless then any = nil end
  local goal = redis.call('HMGET', GOAL, 'status', 'backoff_until')
  local status = goal[1]
  if not status then return {'no_goal'} end
  if status ~= 'active' then return {'inactive', status} end
  now = now or now_ms()
  local backoff = tonumber(goal[2])
  if backoff and backoff > now then return {'empty', tostring(backoff - now)} end

  local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now)
  for _, id in ipairs(due) do want(id) end
  if #due > 0 then want_roles() end
  local own = nil
  if role ~= '' then own = ready_key(role) end
  local first = nil
  if any then first = redis.call('ZRANGE', any, 0, 0)[1] end
  if first then want(first) end
  if own then
    first = redis.call('ZRANGE', own, 0, 0)[1]
    if first then want(first) end
  end
  local pick = nil
  if preferred and preferred ~= '' and ((any and redis.call('ZSCORE', any, preferred))
      or (own and redis.call('ZSCORE', own, preferred))) then
    pick = preferred
    want(pick)
  end
  if wanting() then return need(claim_hints(role, MORE_HINTS, roleless)) end

  for _, id in ipairs(due) do
    local f = redis.call('HMGET', task_key(id), 'role', 'priority')
    redis.call('ZREM', DELAYED, id)
    redis.call('HSET', task_key(id), 'retry_at', 0)
    index_ready(id, f[1], f[2])
  end

  local id = nil
  if pick then
    if (any and redis.call('ZREM', any, pick) == 1) or (own and redis.call('ZREM', own, pick) == 1) then
      id = pick
    end
  end
  if id then
    -- taken above
  elseif not own then
    if any then id = redis.call('ZPOPMIN', any)[1] end
  elseif not any then
    id = redis.call('ZPOPMIN', own)[1]
  else
    local a = redis.call('ZRANGE', READY, 0, 0, 'WITHSCORES')
    local b = redis.call('ZRANGE', own, 0, 0, 'WITHSCORES')
    local key = nil
    if a[1] and b[1] then
      local sa, sb = tonumber(a[2]), tonumber(b[2])
      if sa < sb or (sa == sb and a[1] < b[1]) then id, key = a[1], READY else id, key = b[1], own end
    elseif a[1] then
      id, key = a[1], READY
    elseif b[1] then
      id, key = b[1], own
    end
    if id then redis.call('ZREM', key, id) end
  end
  if not id then
    local next_retry = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
    if next_retry[1] then return {'empty', tostring(tonumber(next_retry[2]) - now)} end
    return {'empty', ''}
  end

  local tkey = task_key(id)
  local counters = redis.call('HMGET', tkey, 'attempt', 'fence')
  local attempt = (tonumber(counters[1]) or 0) + 1
  local fence = (tonumber(counters[2]) or 0) + 1
  redis.call('SET', lock_key(id), lock_value(token, fence), 'PX', ttl)
  redis.call('HSET', tkey, 'status', 'RUNNING', 'owner', agent, 'attempt', attempt,
    'fence', fence, 'lease_expires', now + ttl, 'started_at', now, 'updated_at', now)
  redis.call('SADD', RUNNING, id)
  local reply = {'claimed', id, tostring(fence), tostring(attempt), redis.call('HGET', DEPENDENTS, id) or ''}
  for _, hint in ipairs(claim_hints(role, HINTS, roleless)) do reply[#reply + 1] = hint end
  return reply
end

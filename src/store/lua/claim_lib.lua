-- Claiming, for claim.lua and complete_and_claim.lua.
-- A claim sends back, as hints, the ids the next claims of the same role may
-- take: the caller declares them on its next claim (RedisStore keeps them per
-- goal and role, and drops each id a claim of its own takes), so a claim rarely
-- needs keys it was not given. Hints cost commands, so a claim sends them only
-- when the caller declared fewer than REFILL tasks (it is running out). How many
-- of each index: after a claim, and after a claim that needed keys.
local HINTS, MORE_HINTS, REFILL = 32, 48, 20

-- The first `n` ids of the roleless index, of the role's, and of the retries
-- backing off (while there may be any).
local function claim_hints(role, n, roleless, delayed)
  local ids = {}
  if roleless then ids = redis.call('ZRANGE', READY, 0, n - 1) end
  if role ~= '' then
    for _, id in ipairs(redis.call('ZRANGE', ready_key(role), 0, n - 1)) do ids[#ids + 1] = id end
  end
  if delayed then
    for _, id in ipairs(redis.call('ZRANGE', DELAYED, 0, n - 1)) do ids[#ids + 1] = id end
  end
  return ids
end

-- Takes the best task of a READY index: its id, or nil (the index is empty, or
-- its best task was not declared: `want` records it, and it stays).
local function pop_best(key)
  local best = redis.call('ZPOPMIN', key)
  if not best[1] then return nil end
  if not TASK[best[1]] then
    redis.call('ZADD', key, best[2], best[1])
    want(best[1])
    return nil
  end
  return best[1], tonumber(best[2])
end

-- Claims the highest-priority READY task for an agent (role '' for none); due
-- retries are promoted first. A role agent takes the better of its role's index
-- and the roleless one (unless `roleless` is false: a reviewer or manager takes
-- only its role's); ties go to the smaller id, as within one index. `now` is
-- the caller's server time, or nil to read it here. `preferred`, when given and
-- READY for this agent, is claimed instead of the best task (the LLM's pick).
-- While the goal backs off (a rate or usage limit, back_off.lua) nothing is
-- claimed and the wait is what is left of it. The agent's own role index must be
-- declared. Nothing is changed unless every task it may take or promote was
-- declared (a promoted retry may become the best task; nothing else can): a
-- best task found undeclared goes back where it was. The goal's `delayed` flag
-- says DELAYED may hold retries (fail.lua sets it), so most claims skip it.
-- Returns {'claimed', id, fence, attempt, the task's dependents JSON or '',
-- needs approval 0/1, rank ms or '', hint ids...} | {'empty', ms until next retry or ''} |
-- {'inactive', goal status} | {'no_goal'} | {'need', ..., hint ids...} (see lib.lua).
local function claim_next(agent, role, ttl, token, now, preferred, roleless)
  -- Reads the roleless index only for agents that may take its tasks.
  local any = READY
  if not roleless then any = nil end
  local goal = redis.call('HMGET', GOAL, 'status', 'backoff_until', 'delayed')
  local status = goal[1]
  if not status then return {'no_goal'} end
  if status ~= 'active' then return {'inactive', status} end
  now = now or now_ms()
  local backoff = tonumber(goal[2])
  if backoff and backoff > now then return {'empty', tostring(backoff - now)} end
  local delayed = goal[3] == '1'

  local due = {}
  if delayed then
    due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now)
    for _, id in ipairs(due) do want(id) end
    if #due > 0 then want_roles() end
  end
  local own = nil
  if role ~= '' then own = ready_key(role) end
  local pick = nil
  if preferred and preferred ~= '' and ((any and redis.call('ZSCORE', any, preferred))
      or (own and redis.call('ZSCORE', own, preferred))) then
    pick = preferred
    want(pick)
  end
  if wanting() then return need(claim_hints(role, MORE_HINTS, roleless, delayed)) end

  for _, id in ipairs(due) do
    local f = redis.call('HMGET', task_key(id), 'role', 'priority', 'rank')
    redis.call('ZREM', DELAYED, id)
    redis.call('HSET', task_key(id), 'retry_at', 0)
    index_ready(id, f[1], f[2], f[3])
  end
  if delayed and redis.call('ZCARD', DELAYED) == 0 then
    redis.call('HDEL', GOAL, 'delayed')
    delayed = false
  end

  local id = nil
  if pick then
    if (any and redis.call('ZREM', any, pick) == 1) or (own and redis.call('ZREM', own, pick) == 1) then
      id = pick
    end
  end
  if id then
    -- taken above
  elseif not (any and own) then
    id = pop_best(any or own)
  else
    -- The better of two indexes: take both bests, put the other one back.
    local a, sa = pop_best(any)
    local b, sb = pop_best(own)
    if a and b then
      if sa < sb or (sa == sb and a < b) then
        redis.call('ZADD', own, sb, b)
        id = a
      else
        redis.call('ZADD', any, sa, a)
        id = b
      end
    else
      id = a or b
      -- An undeclared best in the other index might have been the better one.
      if wanting() then
        if a then redis.call('ZADD', any, sa, a) end
        if b then redis.call('ZADD', own, sb, b) end
        id = nil
      end
    end
  end
  if wanting() then return need(claim_hints(role, MORE_HINTS, roleless, delayed)) end
  if not id then
    -- An idle claim looks at DELAYED whatever the flag says, and sets the flag
    -- if it was missing (a goal from before the flag): nothing waits forever.
    local next_retry = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
    if next_retry[1] then
      if not delayed then redis.call('HSET', GOAL, 'delayed', '1') end
      return {'empty', tostring(math.max(tonumber(next_retry[2]) - now, 0))}
    end
    return {'empty', ''}
  end

  local tkey = task_key(id)
  local counters = redis.call('HMGET', tkey, 'attempt', 'fence', 'approval', 'rank')
  local attempt = (tonumber(counters[1]) or 0) + 1
  local fence = (tonumber(counters[2]) or 0) + 1
  redis.call('SET', lock_key(id), lock_value(token, fence), 'PX', ttl)
  redis.call('HSET', tkey, 'status', 'RUNNING', 'owner', agent, 'attempt', attempt,
    'fence', fence, 'lease_expires', now + ttl, 'started_at', now, 'updated_at', now)
  redis.call('SADD', RUNNING, id)
  local approval = '0'
  if counters[3] == '1' then approval = '1' end
  local reply = {'claimed', id, tostring(fence), tostring(attempt),
    redis.call('HGET', DEPENDENTS, id) or '', approval, counters[4] or ''}
  if DECLARED < REFILL then
    for _, hint in ipairs(claim_hints(role, HINTS, roleless, delayed)) do reply[#reply + 1] = hint end
  end
  return reply
end

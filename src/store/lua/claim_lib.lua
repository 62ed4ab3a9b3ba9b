-- Claiming, for claim.lua and complete_and_claim.lua.
-- Claims the highest-priority READY task for an agent (role '' for none); due
-- retries are promoted first. A role agent takes the better of its role's index
-- and the roleless one; ties go to the smaller id, as within one index. `now` is
-- the caller's server time, or nil to read it here. `preferred`, when given and
-- READY for this agent, is claimed instead of the best task (the LLM's pick).
-- While the goal backs off (a rate or usage limit, back_off.lua) nothing is
-- claimed and the wait is what is left of it.
-- Returns {'claimed', id, fence, attempt} | {'empty', ms until next retry or ''} |
-- {'inactive', goal status} | {'no_goal'}.
local function claim_next(agent, role, ttl, token, now, preferred)
  local goal = redis.call('HMGET', GOAL, 'status', 'backoff_until')
  local status = goal[1]
  if not status then return {'no_goal'} end
  if status ~= 'active' then return {'inactive', status} end
  now = now or now_ms()
  local backoff = tonumber(goal[2])
  if backoff and backoff > now then return {'empty', tostring(backoff - now)} end

  for _, due in ipairs(redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now)) do
    local f = redis.call('HMGET', task_key(due), 'role', 'priority')
    redis.call('ZREM', DELAYED, due)
    redis.call('HSET', task_key(due), 'retry_at', 0)
    index_ready(due, f[1], f[2])
  end

  local id = nil
  if preferred and preferred ~= '' then
    if redis.call('ZREM', ready_key(nil), preferred) == 1
      or (role ~= '' and redis.call('ZREM', ready_key(role), preferred) == 1) then
      id = preferred
    end
  end
  if id then
    -- taken above
  elseif role == '' then
    id = redis.call('ZPOPMIN', ready_key(nil))[1]
  else
    local any, own = ready_key(nil), ready_key(role)
    local a = redis.call('ZRANGE', any, 0, 0, 'WITHSCORES')
    local b = redis.call('ZRANGE', own, 0, 0, 'WITHSCORES')
    local key = nil
    if a[1] and b[1] then
      local sa, sb = tonumber(a[2]), tonumber(b[2])
      if sa < sb or (sa == sb and a[1] < b[1]) then id, key = a[1], any else id, key = b[1], own end
    elseif a[1] then
      id, key = a[1], any
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
  return {'claimed', id, tostring(fence), tostring(attempt)}
end

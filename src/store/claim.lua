-- Claims the highest-priority READY task for an agent. ARGV: G, agent, role ('' for
-- none), ttl ms, token. Due retries are promoted first.
-- Returns {'claimed', id, fence, attempt} | {'empty', ms until next retry or ''} |
-- {'inactive', goal status} | {'no_goal'}.
local agent, role, ttl, token = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local status = redis.call('HGET', GOAL, 'status')
if not status then return {'no_goal'} end
if status ~= 'active' then return {'inactive', status} end
local now = now_ms()

for _, id in ipairs(redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now)) do
  redis.call('ZREM', DELAYED, id)
  redis.call('HDEL', task_key(id), 'retry_at')
  index_ready(id)
end

-- A role agent takes the better of its role's index and the roleless one;
-- ties go to the smaller id, as within one index.
local id, key = nil, nil
local candidates = {ready_key(nil)}
if role ~= '' then candidates[2] = ready_key(role) end
local best_score = nil
for _, k in ipairs(candidates) do
  local top = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if top[1] then
    local score = tonumber(top[2])
    if best_score == nil or score < best_score or (score == best_score and top[1] < id) then
      id, key, best_score = top[1], k, score
    end
  end
end
if not id then
  local next_retry = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
  if next_retry[1] then return {'empty', tostring(tonumber(next_retry[2]) - now)} end
  return {'empty', ''}
end

redis.call('ZREM', key, id)
local tkey = task_key(id)
local attempt = redis.call('HINCRBY', tkey, 'attempt', 1)
local fence = redis.call('HINCRBY', tkey, 'fence', 1)
redis.call('SET', lock_key(id), token, 'PX', ttl)
set_status(id, 'READY', 'RUNNING', now)
redis.call('HSET', tkey, 'owner', agent, 'lease_expires', now + ttl, 'started_at', now)
redis.call('SADD', RUNNING, id)
return {'claimed', id, tostring(fence), tostring(attempt)}

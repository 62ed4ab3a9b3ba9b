-- Helpers of the scripts that can fail a task for good (fail, reap, drop_task).
-- unindex_ready needs the role's index declared (want_roles first).
local function unindex_ready(id, role)
  redis.call('ZREM', ready_key(role), id)
  redis.call('ZREM', DELAYED, id)
end

local function max_attempts()
  return tonumber(redis.call('HGET', GOAL, 'max_attempts') or '3')
end

local function goal_failed(now)
  if redis.call('HGET', GOAL, 'status') ~= 'failed' then
    redis.call('HSET', GOAL, 'status', 'failed', 'finished_at', now)
    redis.call(PUBLISH, EVENTS, 'goal failed')
  end
end

-- A task that failed for good: FAILED, and the goal with it. lease_expires and
-- retry_at are overwritten with 0, which reads back as unset.
local function fail_for_good(id, reason, now)
  redis.call('HSET', task_key(id), 'status', 'FAILED', 'last_error', reason, 'lease_expires', 0,
    'retry_at', 0, 'finished_at', now, 'updated_at', now)
  redis.call('HINCRBY', GOAL, 'count_failed', 1)
  goal_failed(now)
  redis.call(PUBLISH, EVENTS, 'failed ' .. id)
end

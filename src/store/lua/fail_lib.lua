-- Helpers of the scripts that can fail a task for good (fail, reap, drop_task).
-- unindex_ready needs the role's index declared (want_roles first);
-- fail_for_good, the task a merge task merges (want_merge_subject, merge_lib.lua).
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

-- A task whose work another takes over: FAILED, not counted against the goal
-- (`superseded`), and no longer to finish; `by` is what to retry instead.
local function supersede(id, by, reason, now)
  redis.call('HSET', task_key(id), 'status', 'FAILED', 'last_error', reason, 'lease_expires', 0,
    'retry_at', 0, 'finished_at', now, 'updated_at', now, 'recovered_by', by)
  redis.call('HINCRBY', GOAL, 'superseded', 1)
  redis.call('HINCRBY', GOAL, 'remaining', -1)
end

-- A task that failed for good: FAILED, and the goal with it. lease_expires and
-- retry_at are overwritten with 0, which reads back as unset. A merge task
-- the task it merges waits for hands its failure to that task, which is then
-- what fails (and what a person retries).
local function fail_for_good(id, reason, now)
  local subject = merge_subject(id)
  if subject then
    local s = redis.call('HMGET', task_key(subject), 'status', 'merging')
    if s[1] == 'BLOCKED' and s[2] == id then
      supersede(id, subject, reason, now)
      redis.call('HSET', task_key(subject), 'pending', 0)
      return fail_for_good(subject, 'its merge task ' .. id .. ' failed: ' .. reason, now)
    end
  end
  redis.call('HSET', task_key(id), 'status', 'FAILED', 'last_error', reason, 'lease_expires', 0,
    'retry_at', 0, 'finished_at', now, 'updated_at', now)
  redis.call('HINCRBY', GOAL, 'count_failed', 1)
  goal_failed(now)
  redis.call(PUBLISH, EVENTS, 'failed ' .. id)
end

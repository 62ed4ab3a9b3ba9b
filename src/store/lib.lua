-- Helpers prepended to every task script. ARGV[1] is the goal id G; KEYS[1] is
-- goal:{G}. Every key of a goal carries {G} as its hash tag, so the keys built
-- here live in KEYS[1]'s slot (safe on Redis Cluster).
local G = ARGV[1]
local GOAL = KEYS[1]
local TAGGED = '{' .. G .. '}'
local DELAYED = 'goal:' .. TAGGED .. ':delayed'
local RUNNING = 'goal:' .. TAGGED .. ':running'
local ROLES = 'goal:' .. TAGGED .. ':roles'
local NODES = 'dag:' .. TAGGED .. ':nodes'
local DEPS = 'dag:' .. TAGGED .. ':deps'
local DEPENDENTS = 'dag:' .. TAGGED .. ':dependents'
local EVENTS = 'events:' .. TAGGED

local function task_key(id) return 'task:' .. TAGGED .. ':' .. id end
local function lock_key(id) return task_key(id) .. ':lock' end
local function ready_key(role)
  if role == nil or role == false or role == '' then return 'goal:' .. TAGGED .. ':ready' end
  return 'goal:' .. TAGGED .. ':ready:role:' .. role
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Moves one task between states, keeping the goal's per-state counters exact.
local function set_status(id, from, to, now)
  redis.call('HSET', task_key(id), 'status', to, 'updated_at', now)
  if from then redis.call('HINCRBY', GOAL, 'count_' .. string.lower(from), -1) end
  redis.call('HINCRBY', GOAL, 'count_' .. string.lower(to), 1)
end

-- Puts a task in its READY index at its current priority (lower score = claimed first).
local function index_ready(id)
  local fields = redis.call('HMGET', task_key(id), 'role', 'priority')
  redis.call('ZADD', ready_key(fields[1]), -tonumber(fields[2]), id)
end

local function unindex_ready(id)
  local role = redis.call('HGET', task_key(id), 'role')
  redis.call('ZREM', ready_key(role), id)
  redis.call('ZREM', DELAYED, id)
end

-- Checks that a lease is still the live one: lock token and fence match, task RUNNING.
local function holds(id, token, fence)
  if redis.call('GET', lock_key(id)) ~= token then return false end
  local fields = redis.call('HMGET', task_key(id), 'status', 'fence')
  return fields[1] == 'RUNNING' and fields[2] == fence
end

local function goal_failed(now)
  if redis.call('HGET', GOAL, 'status') ~= 'failed' then
    redis.call('HSET', GOAL, 'status', 'failed', 'finished_at', now)
    redis.call('PUBLISH', EVENTS, 'goal failed')
  end
end

-- A task that failed for good: FAILED, and the goal with it.
local function fail_for_good(id, from, reason, now)
  set_status(id, from, 'FAILED', now)
  redis.call('HSET', task_key(id), 'last_error', reason, 'finished_at', now)
  redis.call('HDEL', task_key(id), 'lease_expires', 'retry_at')
  goal_failed(now)
  redis.call('PUBLISH', EVENTS, 'failed ' .. id)
end

local function max_attempts()
  return tonumber(redis.call('HGET', GOAL, 'max_attempts') or '3')
end

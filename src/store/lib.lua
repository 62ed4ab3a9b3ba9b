-- Helpers prepended to every task script. ARGV[1] is the goal id G; KEYS[1] is
-- goal:{G}. Every key of a goal carries {G} as its hash tag, so the keys built
-- here live in KEYS[1]'s slot (safe on Redis Cluster).
--
-- Each redis.call costs a few microseconds of the single server thread, so the
-- hot paths (claim, complete) make as few as they can: one TIME per script, one
-- HSET per task change, no per-state counters (goal_status.lua derives them).
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

-- Server time in ms. A script calls it at most once and passes `now` along.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The lock holds the lease's token and fence together, so one GET checks both.
-- It exists only while its task is RUNNING under that lease: every way out of
-- RUNNING deletes it (and reap acts only once Redis expired it).
local function lock_value(token, fence) return token .. ' ' .. fence end

-- Checks that a lease is still the live one.
local function holds(id, token, fence)
  return redis.call('GET', lock_key(id)) == lock_value(token, fence)
end

-- Puts a task in its READY index at its priority (lower score = claimed first).
local function index_ready(id, role, priority)
  redis.call('ZADD', ready_key(role), -tonumber(priority), id)
end

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
    redis.call('PUBLISH', EVENTS, 'goal failed')
  end
end

-- A task that failed for good: FAILED, and the goal with it. lease_expires and
-- retry_at are overwritten with 0, which reads back as unset.
local function fail_for_good(id, reason, now)
  redis.call('HSET', task_key(id), 'status', 'FAILED', 'last_error', reason, 'lease_expires', 0,
    'retry_at', 0, 'finished_at', now, 'updated_at', now)
  redis.call('HINCRBY', GOAL, 'count_failed', 1)
  goal_failed(now)
  redis.call('PUBLISH', EVENTS, 'failed ' .. id)
end

-- One more task DONE: returns how many are not DONE yet.
local function count_done()
  local remaining = redis.call('HINCRBY', GOAL, 'remaining', -1)
  if remaining < 0 then
    -- A goal planned before `remaining` existed: derive it once from the old counter.
    local old = redis.call('HMGET', GOAL, 'total', 'count_done')
    remaining = (tonumber(old[1]) or 0) - (tonumber(old[2]) or 0) - 1
    redis.call('HSET', GOAL, 'remaining', remaining)
  end
  return remaining
end

-- Claims the highest-priority READY task for an agent (role '' for none); due
-- retries are promoted first. A role agent takes the better of its role's index
-- and the roleless one; ties go to the smaller id, as within one index. `now` is
-- the caller's server time, or nil to read it here.
-- Returns {'claimed', id, fence, attempt} | {'empty', ms until next retry or ''} |
-- {'inactive', goal status} | {'no_goal'}.
local function claim_next(agent, role, ttl, token, now)
  local status = redis.call('HGET', GOAL, 'status')
  if not status then return {'no_goal'} end
  if status ~= 'active' then return {'inactive', status} end
  now = now or now_ms()

  for _, due in ipairs(redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now)) do
    local f = redis.call('HMGET', task_key(due), 'role', 'priority')
    redis.call('ZREM', DELAYED, due)
    redis.call('HSET', task_key(due), 'retry_at', 0)
    index_ready(due, f[1], f[2])
  end

  local id = nil
  if role == '' then
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

-- Completes a held task and promotes dependents whose dependencies are now all DONE.
-- Returns {'ok', goal complete 0/1, promoted ids...}, now | {'lost'}.
local function complete_held(id, token, fence, progress, artifacts)
  if not holds(id, token, fence) then return {'lost'} end
  local now = now_ms()
  redis.call('DEL', lock_key(id))
  redis.call('SREM', RUNNING, id)
  redis.call('HSET', task_key(id), 'status', 'DONE', 'progress', progress,
    'artifacts', artifacts, 'lease_expires', 0, 'finished_at', now, 'updated_at', now)

  local reply = {'ok', '0'}
  local dependents = redis.call('HGET', DEPENDENTS, id)
  if dependents then
    for _, d in ipairs(cjson.decode(dependents)) do
      if redis.call('HINCRBY', task_key(d), 'pending', -1) == 0 then
        local f = redis.call('HMGET', task_key(d), 'status', 'role', 'priority')
        if f[1] == 'BLOCKED' then
          redis.call('HSET', task_key(d), 'status', 'READY', 'updated_at', now)
          index_ready(d, f[2], f[3])
          reply[#reply + 1] = d
        end
      end
    end
  end
  if #reply > 2 then redis.call('PUBLISH', EVENTS, 'ready') end
  if count_done() == 0 then
    redis.call('HSET', GOAL, 'status', 'complete', 'finished_at', now)
    redis.call('PUBLISH', EVENTS, 'goal complete')
    reply[2] = '1'
  end
  return reply, now
end

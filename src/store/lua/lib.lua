-- Helpers prepended to every task script. ARGV[1] is the goal id G; KEYS[1] is
-- goal:{G}. Every key of a goal carries {G} as its hash tag, so the keys built
-- here live in KEYS[1]'s slot (safe on Redis Cluster).
--
-- Each redis.call costs a few microseconds of the single server thread, so the
-- hot paths (claim, complete) make as few as they can: one TIME per script, one
-- HSET per task change, no per-state counters (goal_status.lua derives them).
-- Every function defined here is a closure built on each call of every script,
-- so helpers only some scripts use live in their own files, prepended only to
-- those scripts (see task_script! in redis/scripts.rs): fail_lib.lua, claim_lib.lua,
-- complete_lib.lua.
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

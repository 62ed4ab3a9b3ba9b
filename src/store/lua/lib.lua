-- Prepended to every goal script (see task_script! in redis/scripts.rs).
--
-- KEYS, every one built in Rust (src/store/keys.rs), all in the goal's slot {G}:
--   1..FIXED  the goal's fixed keys, named below (events:{G} is its channel);
--   then      the ready index of each role named in ARGV (goal:{G}:ready:role:R);
--   then      for each task named in ARGV, its hash and its lock (task:{G}:T, task:{G}:T:lock).
-- ARGV: G, the publish command (PUBLISH; SPUBLISH on Redis Cluster), the number of
-- roles, the number of tasks, the roles, the task ids, then the script's own
-- arguments, which scripts read as ARG[1], ARG[2]...
--
-- No script builds a key name. task_key, lock_key and ready_key look up what was
-- declared and raise for anything else, which is a bug: a script first checks
-- that what its work needs was declared (`want`, `want_roles`) and, if not,
-- writes nothing and answers {'need', #roles, roles..., ids...}; the caller calls
-- again with those declared (RedisStore::run_goal_script). Because every key is
-- declared, Redis Cluster checks them all before the script runs: while the
-- goal's slot migrates, a script gets ASK or TRYAGAIN (retried by the client)
-- instead of failing half-way at a key that already moved.
--
-- Each redis.call costs a few microseconds of the single server thread, so the
-- hot paths (claim, complete) make as few as they can: one TIME per script, one
-- HSET per task change, no per-state counters (goal_status.lua derives them).
-- Every function defined here is a closure built on each call of every script,
-- so helpers only some scripts use live in their own files, prepended only to
-- those scripts: fail_lib.lua, claim_lib.lua, complete_lib.lua, release_lib.lua.
local FIXED = 9
local GOAL = KEYS[1]
local READY = KEYS[2]
local DELAYED = KEYS[3]
local RUNNING = KEYS[4]
local ROLES = KEYS[5]
local NODES = KEYS[6]
local DEPS = KEYS[7]
local DEPENDENTS = KEYS[8]
local EVENTS = KEYS[9]
local PUBLISH = 'PUBLISH'
if ARGV[2] == 'SPUBLISH' then PUBLISH = 'SPUBLISH' end

local ROLE_READY, TASK, LOCK, ARG = {}, {}, {}, {}
-- How many tasks the caller declared.
local DECLARED = tonumber(ARGV[4])
do
  local roles, tasks = tonumber(ARGV[3]), tonumber(ARGV[4])
  for i = 1, roles do ROLE_READY[ARGV[4 + i]] = KEYS[FIXED + i] end
  for i = 1, tasks do
    local id, at = ARGV[4 + roles + i], FIXED + roles + 2 * i
    TASK[id], LOCK[id] = KEYS[at - 1], KEYS[at]
  end
  for i = 5 + roles + tasks, #ARGV do ARG[#ARG + 1] = ARGV[i] end
end

local function undeclared(what) return error('porki: ' .. what .. ' was not declared in KEYS') end
local function task_key(id) return TASK[id] or undeclared('task ' .. id) end
local function lock_key(id) return LOCK[id] or undeclared('the lock of task ' .. id) end
local function ready_key(role)
  if role == nil or role == false or role == '' then return READY end
  return ROLE_READY[role] or undeclared('the ready index of role ' .. role)
end

-- What the script's work needs and was not declared: task ids, and whether a
-- role's ready index is missing (the answer then lists every role of the goal).
local NEEDED, NEED_ROLES = {}, false
local function want(id) if not TASK[id] then NEEDED[#NEEDED + 1] = id end end
local function want_roles()
  for _, role in ipairs(redis.call('SMEMBERS', ROLES)) do
    if not ROLE_READY[role] then NEED_ROLES = true end
  end
end
local function wanting() return NEED_ROLES or #NEEDED > 0 end
-- The answer of a script that wrote nothing for want of keys; `hints` are more
-- ids worth declaring next time.
local function need(hints)
  local roles = redis.call('SMEMBERS', ROLES)
  local reply = {'need', tostring(#roles)}
  for _, role in ipairs(roles) do reply[#reply + 1] = role end
  for _, id in ipairs(NEEDED) do reply[#reply + 1] = id end
  for _, id in ipairs(hints or {}) do reply[#reply + 1] = id end
  return reply
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

-- A READY task's score (lower = claimed first): the explicit priority first,
-- then the rank (ms of estimated work behind the task, see domain/rank.rs), then
-- (Redis orders equal scores so) the smaller id. Both fit one double exactly:
-- priority within +-2^21, rank within 2^31 ms (24 days).
local RANK_CAP, PRIORITY_CAP = 2147483647, 2097151
local function ready_score(priority, rank)
  local p = math.max(-PRIORITY_CAP, math.min(PRIORITY_CAP, tonumber(priority) or 0))
  local r = math.max(0, math.min(RANK_CAP, tonumber(rank) or 0))
  return -(p * 2147483648 + r)
end

-- Puts a task in its READY index at its priority and rank.
local function index_ready(id, role, priority, rank)
  redis.call('ZADD', ready_key(role), ready_score(priority, rank), id)
end

-- Runs `command key a1 a2 ...` over a long list of arguments in as few calls as
-- Lua's stack allows (a plan of thousands of tasks is a few calls, not thousands).
local function batched(command, key, args)
  local chunk = 4000
  for i = 1, #args, chunk do
    redis.call(command, key, unpack(args, i, math.min(i + chunk - 1, #args)))
  end
end

-- Collects READY index entries to add in one ZADD per index: add(id, role,
-- priority, rank), then flush().
local function ready_batch()
  local by_key = {}
  local batch = {}
  function batch.add(id, role, priority, rank)
    local key = ready_key(role)
    local list = by_key[key]
    if not list then list = {}; by_key[key] = list end
    list[#list + 1] = ready_score(priority, rank)
    list[#list + 1] = id
  end
  function batch.flush()
    for key, list in pairs(by_key) do batched('ZADD', key, list) end
  end
  return batch
end

-- Writes a goal's plan. KEYS, ARGV: see lib.lua; the plan's tasks and roles are
-- declared, and when a different plan is replaced, the old plan's too.
-- ARG: fingerprint, title, max_attempts, expected (the fingerprint of the stored
-- plan this write may replace, '' for none), plan JSON:
-- [{id, node, deps, dependents, priority, role, kind, of, approval, soft, rank,
-- estimate, estimate_from}, ...] (rank and estimate in ms, domain/rank; none
-- when the goal is not ranked), source fingerprint, 'off' when not ranked.
-- A different stored plan is replaced only while it is still the expected one
-- (compare-and-set): of two processes replanning at once, the second finds the
-- first's plan and answers conflict, so the caller resumes it.
-- Returns {'created'} | {'replaced'} | {'unchanged'} | {'conflict', stored fingerprint} |
-- {'need', ...}.
local fingerprint, title, attempts, expected = ARG[1], ARG[2], ARG[3], ARG[4]
local existing = redis.call('HGET', GOAL, 'fingerprint')
local outcome = 'created'
local plan = cjson.decode(ARG[5])
for _, n in ipairs(plan) do want(n.id) end
local old = {}
if existing then
  if existing == fingerprint then return {'unchanged'} end
  if expected == '' or existing ~= expected then return {'conflict', existing} end
  old = redis.call('HKEYS', NODES)
  for _, id in ipairs(old) do want(id) end
  want_roles()
end
if wanting() then return need() end
if existing then
  -- What is about the goal, not the plan, outlives the plan: its LLM spending
  -- (tokens, cost, the reservations of calls in flight), a limit's wait and
  -- the goal branch.
  local kept = {}
  local fields = redis.call('HGETALL', GOAL)
  for i = 1, #fields, 2 do
    local name = fields[i]
    if name == 'tokens' or name == 'cost_usd' or name == 'priced_calls'
      or name == 'priced_usd' or name == 'cost_unknown' or name == 'backoff_until'
      or name == 'backoff_reason' or name == 'branch' or name == 'repository'
      or string.sub(name, 1, 9) == 'reserved:' then
      kept[#kept + 1] = name
      kept[#kept + 1] = fields[i + 1]
    end
  end
  for _, id in ipairs(old) do
    redis.call('DEL', task_key(id), lock_key(id))
  end
  for _, role in ipairs(redis.call('SMEMBERS', ROLES)) do
    redis.call('DEL', ready_key(role))
  end
  redis.call('DEL', GOAL, READY, DELAYED, RUNNING, ROLES, NODES, DEPS, DEPENDENTS)
  if #kept > 0 then redis.call('HSET', GOAL, unpack(kept)) end
  outcome = 'replaced'
end

local now = now_ms()
-- The plan's hashes and indexes are written a batch at a time; only each task's
-- own hash takes one call per task.
local nodes, deps, dependents, roles, seen = {}, {}, {}, {}, {}
local ready = ready_batch()
for _, n in ipairs(plan) do
  local key = task_key(n.id)
  nodes[#nodes + 1] = n.id
  nodes[#nodes + 1] = n.node
  if #n.deps > 0 then
    deps[#deps + 1] = n.id
    deps[#deps + 1] = cjson.encode(n.deps)
  end
  if #n.dependents > 0 then
    dependents[#dependents + 1] = n.id
    dependents[#dependents + 1] = cjson.encode(n.dependents)
  end
  local status = 'BLOCKED'
  if #n.deps == 0 then status = 'READY' end
  local fields = {'status', status, 'title', n.title, 'priority', n.priority, 'attempt', 0,
    'fence', 0, 'pending', #n.deps, 'created_at', now, 'updated_at', now}
  if n.rank then
    fields[#fields + 1] = 'rank'; fields[#fields + 1] = n.rank
    fields[#fields + 1] = 'estimate'; fields[#fields + 1] = n.estimate
    fields[#fields + 1] = 'estimate_from'; fields[#fields + 1] = n.estimate_from
  end
  if n.kind ~= 'work' then
    fields[#fields + 1] = 'kind'; fields[#fields + 1] = n.kind
    fields[#fields + 1] = 'of'; fields[#fields + 1] = n.of
  end
  if n.approval then fields[#fields + 1] = 'approval'; fields[#fields + 1] = '1' end
  if n.soft then fields[#fields + 1] = 'soft'; fields[#fields + 1] = '1' end
  if n.role ~= '' then
    fields[#fields + 1] = 'role'; fields[#fields + 1] = n.role
    if not seen[n.role] then
      seen[n.role] = true
      roles[#roles + 1] = n.role
    end
  end
  redis.call('HSET', key, unpack(fields))
  if status == 'READY' then ready.add(n.id, n.role, n.priority, n.rank) end
end
batched('HSET', NODES, nodes)
batched('HSET', DEPS, deps)
batched('HSET', DEPENDENTS, dependents)
batched('SADD', ROLES, roles)
ready.flush()
redis.call('HDEL', GOAL, 'last_error', 'finished_at')
-- Of the per-state counts the goal keeps only `remaining` (tasks not DONE, so
-- complete knows the goal is done) and `count_failed`; goal_status.lua derives the rest.
redis.call('HSET', GOAL, 'status', 'active', 'title', title, 'fingerprint', fingerprint,
  'max_attempts', attempts, 'created_at', now, 'total', #plan, 'source', ARG[6],
  'remaining', #plan, 'count_failed', 0)
if ARG[7] == 'off' then redis.call('HSET', GOAL, 'ranking', 'off') end
redis.call(PUBLISH, EVENTS, 'ready')
return {outcome}

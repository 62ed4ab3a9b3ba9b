-- Adding tasks to a running plan, for the team scripts (fail.lua's recovery,
-- settle_review.lua, reject.lua). An added task is declared by the caller like
-- any other (its id is derived, so the caller can guess it; `want` covers the rest).

-- Whether a task exists (has a hash).
local function exists(id)
  return redis.call('EXISTS', task_key(id)) == 1
end

-- The rank of a task added in front of `waiter` (declared): one typical task of
-- the goal (`typical_ms`, which ranker.rs keeps; a minute until it has) plus
-- what waits behind the waiter: its rank, less its own estimate when it does
-- not run again (`reruns` false: a recovered task, a task settled by its merge
-- or escalation). O(1), so a team script stays cheap; ranker.rs recomputes the
-- whole goal's ranks soon after. Returns rank, estimate (ms).
local function rank_before(waiter, reruns)
  local typical = tonumber(redis.call('HGET', GOAL, 'typical_ms')) or 60000
  local w = redis.call('HMGET', task_key(waiter), 'rank', 'estimate')
  local behind = tonumber(w[1]) or 0
  if not reruns then behind = math.max(0, behind - (tonumber(w[2]) or 0)) end
  return typical + behind, typical
end

-- Adds task `id` at `now`: t = {title, kind, of, notes, role ('' for none),
-- priority, cycle, approval (bool), before (the task that will wait for it),
-- reruns (whether `before` runs again after it)}. It is READY, ranked by rank_before.
-- The goal counts it as one more task to finish, and its node joins the plan's
-- (dag:{G}:nodes) so reports show it.
local function add_task(id, t, now)
  local key = task_key(id)
  local rank, estimate = rank_before(t.before, t.reruns)
  redis.call('HSET', key, 'status', 'READY', 'title', t.title, 'priority', t.priority,
    'attempt', 0, 'fence', 0, 'pending', 0, 'created_at', now, 'updated_at', now,
    'kind', t.kind, 'of', t.of, 'cycle', t.cycle or 0, 'notes', t.notes or '',
    'rank', rank, 'estimate', estimate, 'estimate_from', 'default')
  local node = {id = id, title = t.title, priority = tonumber(t.priority) or 0, kind = t.kind, of = t.of}
  if t.approval then
    redis.call('HSET', key, 'approval', '1')
    node.approval = true
  end
  if t.role ~= '' then
    redis.call('HSET', key, 'role', t.role)
    redis.call('SADD', ROLES, t.role)
    node.role = t.role
  end
  redis.call('HSET', NODES, id, cjson.encode(node))
  redis.call('HINCRBY', GOAL, 'total', 1)
  redis.call('HINCRBY', GOAL, 'remaining', 1)
  index_ready(id, t.role, t.priority, rank)
  redis.call(PUBLISH, EVENTS, 'ready')
end

-- Makes `id` wait for `on` as well (its dependencies list and the count of
-- unfinished ones); `promote` also lists `id` as a dependent of `on`, so that
-- finishing `on` moves it on (an escalation settles its review itself instead).
local function wait_for(id, on, promote)
  local listed = redis.call('HGET', DEPS, id)
  local deps = {}
  if listed then deps = cjson.decode(listed) end
  deps[#deps + 1] = on
  redis.call('HSET', DEPS, id, cjson.encode(deps))
  redis.call('HINCRBY', task_key(id), 'pending', 1)
  if promote then redis.call('HSET', DEPENDENTS, on, cjson.encode({id})) end
end

-- The planned task whose id names the tasks added about task `id` (declared):
-- the task itself, or for a recovery the task it recovers, so that no added id
-- nests suffixes (`x.fix-1` may fix `x.recover`, `x.escalate` settle its review).
local function planned_of(id)
  local f = redis.call('HMGET', task_key(id), 'kind', 'of')
  if f[1] == 'recover' and f[2] then return f[2] end
  return id
end

-- The next fix named after planned task `planned`: its id and number
-- (`planned.fix-<n>`, never reused). Reads planned's hash: it must be declared
-- (`want` it and answer `need` first).
local function next_fix(planned)
  local n = (tonumber(redis.call('HGET', task_key(planned), 'fixes')) or 0) + 1
  return planned .. '.fix-' .. n, n
end

-- Adds fix `fix` (number n, counted on `planned`) of task `subject`, for
-- subject's role, carrying `notes`; `waiter` (the review, or the rejected task)
-- waits for it. subject, planned and waiter are declared.
local function add_fix(subject, planned, fix, n, notes, waiter, now)
  local b = redis.call('HMGET', task_key(subject), 'title', 'role', 'priority')
  redis.call('HSET', task_key(planned), 'fixes', n)
  add_task(fix, {title = 'Fix ' .. n .. ' of: ' .. (b[1] or subject), kind = 'fix', of = subject,
    notes = notes, role = b[2] or '', priority = b[3] or 0, cycle = n, before = waiter,
    reruns = true}, now)
  wait_for(waiter, fix, true)
end

-- Whether task `id` lists `on` among its dependencies.
local function waits_on(id, on)
  local listed = redis.call('HGET', DEPS, id)
  if not listed then return false end
  for _, dep in ipairs(cjson.decode(listed)) do
    if dep == on then return true end
  end
  return false
end

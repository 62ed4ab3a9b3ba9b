-- Finishing tasks, for the scripts that complete, approve or settle them.
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

-- Declares (with `want`) the dependents of a task about to be DONE, and every
-- role; returns them.
local function want_dependents(id)
  local listed = redis.call('HGET', DEPENDENTS, id)
  if not listed then return {} end
  local dependents = cjson.decode(listed)
  for _, d in ipairs(dependents) do want(d) end
  want_roles()
  return dependents
end

-- A task is DONE (its hash already says so): its dependents whose dependencies
-- are now all DONE move on (READY, or back to AWAITING_APPROVAL for a task a
-- person rejected, see reject.lua), and the goal completes with its last task.
-- Returns {'ok', goal complete 0/1, ids made READY...}.
local function finish_done(dependents, now)
  local reply = {'ok', '0'}
  local ready = ready_batch()
  for _, d in ipairs(dependents) do
    local f = redis.call('HMGET', task_key(d), 'pending', 'status', 'role', 'priority', 'return_to',
      'rank')
    local pending = (tonumber(f[1]) or 0) - 1
    if pending ~= 0 or f[2] ~= 'BLOCKED' then
      redis.call('HSET', task_key(d), 'pending', pending)
    elseif f[5] == 'AWAITING_APPROVAL' then
      redis.call('HSET', task_key(d), 'pending', 0, 'status', 'AWAITING_APPROVAL', 'updated_at', now)
      redis.call('HDEL', task_key(d), 'return_to')
      redis.call('HINCRBY', GOAL, 'awaiting', 1)
    else
      redis.call('HSET', task_key(d), 'pending', 0, 'status', 'READY', 'updated_at', now)
      ready.add(d, f[3], f[4], f[6])
      reply[#reply + 1] = d
    end
  end
  ready.flush()
  if #reply > 2 then redis.call(PUBLISH, EVENTS, 'ready') end
  if count_done() == 0 then
    redis.call('HSET', GOAL, 'status', 'complete', 'finished_at', now)
    redis.call(PUBLISH, EVENTS, 'goal complete')
    reply[2] = '1'
  end
  return reply
end

-- Completes a held task and promotes dependents whose dependencies are now all
-- DONE; the dependents (and every role's index) must be declared, else nothing
-- is written. A task that needs a person's approval is AWAITING_APPROVAL
-- instead, holding no lease, and nothing is promoted until approve.lua. `call`
-- is a random id of this completion request, kept on the task (`done_call`):
-- the same request sent again, because a failover lost its answer and the
-- client resent it, is answered ok again (promoting nothing new); any other
-- completion of a task that is no longer held is refused. `hold` is whether the
-- task needs approval as its claim said ('1'/'0'; '' when the caller does not
-- know, and the task hash is read). `commit` and `diffstat` (may be nil or '')
-- are the goal branch's commit holding the work and what it changed.
-- A merge task's completion also settles the task whose work it merges, while
-- that task waits for it (BLOCKED, `merging` naming it): DONE with the same
-- commit, its dependents promoted (or AWAITING_APPROVAL if it needs approval).
-- `then_claim` (optional, complete_and_claim.lua) claims the next task once the
-- dependents are promoted, given `now`; its reply is returned fourth, and the
-- task it claimed is kept on the completed task (`next_claim`) in the same
-- write that marks it DONE (one command less per task than a write of its own).
-- Not for a merge task that settles its subject: the caller claims after it.
-- Returns {'ok', goal complete 0/1 or 'awaiting', promoted ids...}, now, whether
-- this answers a resend, the claim reply if then_claim ran | {'lost'} | {'need', ...}.
local function complete_held(id, token, fence, progress, artifacts, call, hold, commit, diffstat,
    then_claim)
  if not holds(id, token, fence) then
    local f = redis.call('HMGET', task_key(id), 'status', 'done_call')
    if f[2] ~= call then return {'lost'} end
    if f[1] == 'AWAITING_APPROVAL' then return {'ok', 'awaiting'}, now_ms(), true end
    if f[1] ~= 'DONE' then return {'lost'} end
    local done = '0'
    if redis.call('HGET', GOAL, 'status') == 'complete' then done = '1' end
    return {'ok', done}, now_ms(), true
  end
  if hold == nil or hold == '' then
    hold = redis.call('HGET', task_key(id), 'approval') == '1'
  else
    hold = hold == '1'
  end
  local dependents = {}
  if not hold then dependents = want_dependents(id) end
  -- The task a merge task settles, and that task's dependents.
  local subject = want_merge_subject(id)
  if wanting() then return need() end
  local settles, subject_hold, subject_dependents = false, false, {}
  if subject and not hold then
    local s = redis.call('HMGET', task_key(subject), 'status', 'merging', 'approval')
    settles = s[1] == 'BLOCKED' and s[2] == id
    subject_hold = s[3] == '1'
    if settles and not subject_hold then subject_dependents = want_dependents(subject) end
    if wanting() then return need() end
  end
  local now = now_ms()
  redis.call('DEL', lock_key(id))
  redis.call('SREM', RUNNING, id)
  local fields = {'progress', progress, 'artifacts', artifacts, 'lease_expires', 0,
    'updated_at', now, 'done_call', call}
  if commit and commit ~= '' then
    fields[#fields + 1] = 'commit'; fields[#fields + 1] = commit
    fields[#fields + 1] = 'diffstat'; fields[#fields + 1] = diffstat or ''
  end
  if hold then
    redis.call('HSET', task_key(id), 'status', 'AWAITING_APPROVAL', unpack(fields))
    redis.call('HINCRBY', GOAL, 'awaiting', 1)
    return {'ok', 'awaiting'}, now
  end
  if then_claim and not settles then
    local reply = finish_done(dependents, now)
    local claimed = then_claim(now)
    if claimed[1] == 'claimed' then
      fields[#fields + 1] = 'next_claim'; fields[#fields + 1] = claimed[2]
    end
    redis.call('HSET', task_key(id), 'status', 'DONE', 'finished_at', now, unpack(fields))
    return reply, now, false, claimed
  end
  redis.call('HSET', task_key(id), 'status', 'DONE', 'finished_at', now, unpack(fields))
  local reply = finish_done(dependents, now)
  if not settles then return reply, now end
  redis.call('HSET', task_key(subject), 'pending', 0, 'updated_at', now)
  if commit and commit ~= '' then
    redis.call('HSET', task_key(subject), 'commit', commit, 'diffstat', diffstat or '')
  end
  if subject_hold then
    redis.call('HSET', task_key(subject), 'status', 'AWAITING_APPROVAL')
    redis.call('HINCRBY', GOAL, 'awaiting', 1)
    return reply, now
  end
  redis.call('HSET', task_key(subject), 'status', 'DONE', 'finished_at', now)
  local settled = finish_done(subject_dependents, now)
  for i = 3, #reply do settled[#settled + 1] = reply[i] end
  return settled, now
end

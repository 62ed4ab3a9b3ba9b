-- Finishes a held review or escalation task with its verdict (see TeamStore::
-- settle_review). KEYS, ARGV: see lib.lua; the task, the tasks it may add or
-- finish, their dependents, and the manager's role are declared (else `need`).
-- ARG: task, token, fence, progress, artifacts JSON, call id, verdict ('approved' |
-- 'changes'), notes, max review cycles, manager role ('' when the goal has none),
-- commit, diffstat (as a completion's).
-- Returns a completion's reply {'ok', ...} (see complete_lib.lua) | {'fix', id} |
-- {'escalated', id} | {'failed', review id} | {'moot', review id} | {'lost'} |
-- {'not_review', kind} | {'need', ...}.
-- The same request sent again (a failover lost its answer and the client resent
-- it) gets the answer it had: a completion's from complete_held, any other kept
-- on the task with the request's call id (`settled`).
local id, token, fence, progress, artifacts, call = ARG[1], ARG[2], ARG[3], ARG[4], ARG[5], ARG[6]
local approved, notes, max_cycles, manager = ARG[7] == 'approved', ARG[8], tonumber(ARG[9]), ARG[10]
local commit, diffstat = ARG[11], ARG[12]

-- Completes the held task as a completion would (complete_lib.lua).
local function complete()
  return complete_held(id, token, fence, progress, artifacts, call, nil, commit, diffstat)
end

-- Answers `reply` ({what, task id}), kept on `task` for a resend of this request.
local function settled(task, reply)
  redis.call('HSET', task_key(task), 'settled', call .. ' ' .. reply[1] .. ' ' .. reply[2])
  return reply
end

if not holds(id, token, fence) then
  local kept = redis.call('HGET', task_key(id), 'settled')
  if kept then
    local was, what, about = string.match(kept, '^(%S+) (%S+) (%S+)$')
    if was == call then return {what, about} end
  end
  if approved then return (complete()) end
  return {'lost'}
end
local t = redis.call('HMGET', task_key(id), 'kind', 'of', 'cycle')
local kind, of, cycle = t[1], t[2], tonumber(t[3]) or 0

if kind == 'escalate' then
  -- `of` is the review, BLOCKED on this escalation; the manager settles it,
  -- unless it no longer waits for it (a person dropped it meanwhile). What an
  -- escalation a plan stored before plans were refused them names is left alone.
  local review = of
  want(review)
  if wanting() then return need() end
  local r = redis.call('HMGET', task_key(review), 'status', 'kind', 'pending', 'approval')
  local listed = r[2] == 'review' and waits_on(review, id)
  local waiting = listed and r[1] == 'BLOCKED'
  local dependents = {}
  if approved and waiting then dependents = want_dependents(review) end
  if wanting() then return need() end
  local done, now = complete()
  if done[1] ~= 'ok' then return done end
  if not waiting then
    -- Nothing to settle: the escalation is DONE and the review stays as it is,
    -- waiting for it no more (retried, the review runs again).
    if listed and (tonumber(r[3]) or 0) > 0 then
      redis.call('HINCRBY', task_key(review), 'pending', -1)
    end
    return settled(id, {'moot', review})
  end
  if not approved then
    redis.call('HSET', task_key(review), 'pending', 0)
    fail_for_good(review, 'the manager rejected the work after the review asked for changes ' ..
      cycle .. ' time(s): ' .. notes, now)
    return settled(id, {'failed', review})
  end
  redis.call('HSET', task_key(review), 'pending', 0, 'lease_expires', 0, 'updated_at', now,
    'progress', 'approved by the manager on escalation ' .. id .. ': ' .. progress)
  if r[4] == '1' then
    redis.call('HSET', task_key(review), 'status', 'AWAITING_APPROVAL')
    redis.call('HINCRBY', GOAL, 'awaiting', 1)
    return {'ok', 'awaiting'}
  end
  redis.call('HSET', task_key(review), 'status', 'DONE', 'finished_at', now)
  return finish_done(dependents, now)
end

if approved then return (complete()) end
if kind ~= 'review' then return {'not_review', kind or 'work'} end

-- Changes requested. `of` is the reviewed work (a planned task or its
-- recovery); the planned task names and numbers what is added. Each hash is
-- read only once declared (a review's id need not be derived from them, so the
-- caller may not have guessed them).
local base = of
want(base)
if wanting() then return need() end
local planned = planned_of(base)
want(planned)
if wanting() then return need() end
local fix, n = nil, nil
local escalation = planned .. '.escalate'
if cycle < max_cycles then
  fix, n = next_fix(planned)
  want(fix)
  want_roles()
elseif manager ~= '' then
  want(escalation)
end
if wanting() then return need() end
if cycle >= max_cycles and (manager == '' or exists(escalation)) then
  local now = now_ms()
  redis.call('DEL', lock_key(id))
  redis.call('SREM', RUNNING, id)
  fail_for_good(id, 'the review asked for changes ' .. (cycle + 1) .. ' time(s), more than the ' ..
    max_cycles .. ' review cycle(s) allowed, and no manager settled it: ' .. notes, now)
  return settled(id, {'failed', id})
end
local now = now_ms()
redis.call('DEL', lock_key(id))
redis.call('SREM', RUNNING, id)
-- The review waits (BLOCKED, its attempts reset) for the fix or the escalation,
-- keeping its notes and the round it is in.
redis.call('HSET', task_key(id), 'status', 'BLOCKED', 'attempt', 0, 'lease_expires', 0,
  'updated_at', now, 'progress', progress, 'notes', notes, 'cycle', cycle + 1)
if fix then
  add_fix(base, planned, fix, n, notes, id, now)
  return settled(id, {'fix', fix})
end
local r = redis.call('HMGET', task_key(base), 'title', 'priority')
add_task(escalation, {title = 'Settle the review of: ' .. (r[1] or base), kind = 'escalate',
  of = id, notes = notes, role = manager, priority = r[2] or 0, cycle = cycle + 1, before = id,
  reruns = false}, now)
wait_for(id, escalation, false)
return settled(id, {'escalated', escalation})

-- Finishes a held review or escalation task with its verdict (see TeamStore::
-- settle_review). KEYS, ARGV: see lib.lua; the task, the tasks it may add or
-- finish, their dependents, and the manager's role are declared (else `need`).
-- ARG: task, token, fence, progress, artifacts JSON, call id, verdict ('approved' |
-- 'changes'), notes, max review cycles, manager role ('' when the goal has none).
-- Returns a completion's reply {'ok', ...} (see complete_lib.lua) | {'fix', id} |
-- {'escalated', id} | {'failed', review id} | {'lost'} | {'need', ...}.
local id, token, fence, progress, artifacts, call = ARG[1], ARG[2], ARG[3], ARG[4], ARG[5], ARG[6]
local approved, notes, max_cycles, manager = ARG[7] == 'approved', ARG[8], tonumber(ARG[9]), ARG[10]
if not holds(id, token, fence) then
  if approved then return (complete_held(id, token, fence, progress, artifacts, call)) end
  return {'lost'}
end
local t = redis.call('HMGET', task_key(id), 'kind', 'of', 'cycle')
local kind, of, cycle = t[1], t[2], tonumber(t[3]) or 0

if kind == 'escalate' then
  -- `of` is the review, BLOCKED on this escalation; the manager settles it.
  local review = of
  want(review)
  local dependents = {}
  if approved then dependents = want_dependents(review) end
  if wanting() then return need() end
  local done, now = complete_held(id, token, fence, progress, artifacts, call)
  if done[1] ~= 'ok' then return done end
  if not approved then
    redis.call('HSET', task_key(review), 'pending', 0)
    fail_for_good(review, 'the manager rejected the work after the review asked for changes ' ..
      cycle .. ' time(s): ' .. notes, now)
    return {'failed', review}
  end
  local r = redis.call('HMGET', task_key(review), 'approval')
  redis.call('HSET', task_key(review), 'pending', 0, 'lease_expires', 0, 'updated_at', now,
    'progress', 'approved by the manager on escalation ' .. id .. ': ' .. progress)
  if r[1] == '1' then
    redis.call('HSET', task_key(review), 'status', 'AWAITING_APPROVAL')
    redis.call('HINCRBY', GOAL, 'awaiting', 1)
    return {'ok', 'awaiting'}
  end
  redis.call('HSET', task_key(review), 'status', 'DONE', 'finished_at', now)
  return finish_done(dependents, now)
end

if approved then return (complete_held(id, token, fence, progress, artifacts, call)) end
if kind ~= 'review' then return {'not_review', kind or 'work'} end

-- Changes requested. `of` is the reviewed task (a work task). Its hash numbers
-- the next fix, so it is read only once it is declared (a review's id need not
-- be derived from it, so the caller may not have guessed it).
local base = of
want(base)
if wanting() then return need() end
local fix, n = nil, nil
local escalation = base .. '.escalate'
if cycle < max_cycles then
  fix, n = next_fix(base)
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
  return {'failed', id}
end
local now = now_ms()
redis.call('DEL', lock_key(id))
redis.call('SREM', RUNNING, id)
-- The review waits (BLOCKED, its attempts reset) for the fix or the escalation,
-- keeping its notes and the round it is in.
redis.call('HSET', task_key(id), 'status', 'BLOCKED', 'attempt', 0, 'lease_expires', 0,
  'updated_at', now, 'progress', progress, 'notes', notes, 'cycle', cycle + 1)
if fix then
  add_fix(base, fix, n, notes, id, now)
  return {'fix', fix}
end
local r = redis.call('HMGET', task_key(base), 'title', 'priority')
add_task(escalation, {title = 'Settle the review of: ' .. (r[1] or base), kind = 'escalate',
  of = id, notes = notes, role = manager, priority = r[2] or 0, cycle = cycle + 1}, now)
wait_for(id, escalation, false)
return {'escalated', escalation}

-- A held task's merge into the goal branch conflicted (see MergeStore::
-- merge_conflict). The task whose work is to merge (the subject: the task, or
-- for a merge task the task it merges) gets a merge task for its role, READY,
-- carrying the conflict, and waits BLOCKED for it (`merging` names it;
-- complete_lib.lua settles the subject when it is DONE, fail_lib.lua fails it
-- when it fails). A conflicting merge task is taken over by the next one, as a
-- recovery takes over failed work (FAILED, superseded). Past its merge tasks
-- (`merges` on the subject) the subject is FAILED, naming the files; a merge
-- task that conflicted then is superseded by the subject, which is what to retry.
-- Merge tasks are named after the planned task (`P.merge`, `P.merge-2`…,
-- numbered by `merge_names` on P), so that no added id nests suffixes.
-- KEYS, ARGV: see lib.lua; the task, the subject, P, the merge task to add and
-- every role are declared (else `need`).
-- ARG: task, token, fence, progress, artifacts JSON, notes, conflict JSON,
-- failure (the subject's last_error past its bound), merge tasks a task may
-- get, longest id.
-- Returns {'merging', merge task, subject} | {'failed', subject} | {'lost'} |
-- {'need', ...}. The same request sent again (same lease) gets the answer it
-- had, kept on the task (`conflicted`).
local id, token, fence, progress, artifacts = ARG[1], ARG[2], ARG[3], ARG[4], ARG[5]
local notes, conflict, failure = ARG[6], ARG[7], ARG[8]
local max_merges, max_len = tonumber(ARG[9]), tonumber(ARG[10])
local lease = lock_value(token, fence)

if not holds(id, token, fence) then
  local kept = redis.call('HGET', task_key(id), 'conflicted')
  if kept then
    local was, reply = string.match(kept, '^(%S+ %S+) (.*)$')
    if was == lease then
      local answer = {}
      for word in string.gmatch(reply, '%S+') do answer[#answer + 1] = word end
      return answer
    end
  end
  return {'lost'}
end
local subject = want_merge_subject(id) or id
if wanting() then return need() end
local s = redis.call('HMGET', task_key(subject), 'kind', 'merges', 'title', 'role', 'priority',
  'status', 'merging')
-- P: an added task's id less its reserved suffix (`P.fix-1`, `P.recover`), when P is a task.
local planned = subject
if s[1] and s[1] ~= 'work' then
  local base, last = string.match(subject, '^(.+)%.([^.]+)$')
  if base and (last == 'review' or last == 'recover' or last == 'escalate'
      or string.match(last, '^fix%-%d+$')) then
    want(base)
    if wanting() then return need() end
    if exists(base) then planned = base end
  end
end
local count = tonumber(s[2]) or 0
local n = (tonumber(redis.call('HGET', task_key(planned), 'merge_names')) or 0) + 1
local merge = nil
-- A merge task whose subject no longer waits for it (a person dropped the
-- subject) is not taken over.
local waiting = id == subject or (s[6] == 'BLOCKED' and s[7] == id)
if waiting and count < max_merges then
  merge = planned .. '.merge'
  if n > 1 then merge = merge .. '-' .. n end
  if #merge > max_len then merge = nil end
end
if merge then
  want(merge)
  want_roles()
  if wanting() then return need() end
  -- Never over a task of that id (a plan written around the planner may have one).
  if exists(merge) then merge = nil end
end

-- Answers `reply`, kept on the task for a resend of this request.
local function answered(reply)
  redis.call('HSET', task_key(id), 'conflicted', lease .. ' ' .. table.concat(reply, ' '))
  return reply
end

local now = now_ms()
redis.call('DEL', lock_key(id))
redis.call('SREM', RUNNING, id)
-- The attempt's result stays on the task: its work is what is to merge.
redis.call('HSET', task_key(id), 'progress', progress, 'artifacts', artifacts)
if not merge then
  -- Past its bound, the subject fails naming the files (through its merge
  -- task, when that is what conflicted: fail_lib.lua).
  if waiting then
    fail_for_good(id, failure, now)
    return answered({'failed', subject})
  end
  fail_for_good(id, 'its merge conflicted, and ' .. subject .. ' no longer waits for it: ' ..
    notes, now)
  return answered({'failed', id})
end
add_task(merge, {title = 'Merge: ' .. (s[3] or subject), kind = 'merge', of = subject,
  notes = notes, role = s[4] or '', priority = s[5] or 0, cycle = count + 1, before = subject,
  reruns = false}, now)
redis.call('HSET', task_key(merge), 'conflict', conflict)
redis.call('HSET', task_key(planned), 'merge_names', n)
redis.call('HSET', task_key(subject), 'merges', count + 1, 'merging', merge)
if id == subject then
  redis.call('HSET', task_key(id), 'status', 'BLOCKED', 'lease_expires', 0, 'updated_at', now)
  wait_for(id, merge, false)
  return answered({'merging', merge, subject})
end
-- The conflicting merge task is taken over by the next one, which the subject
-- waits for instead.
supersede(id, merge, 'its merge conflicted too: ' .. notes, now)
local deps = cjson.decode(redis.call('HGET', DEPS, subject))
for i, dep in ipairs(deps) do
  if dep == id then deps[i] = merge end
end
redis.call('HSET', DEPS, subject, cjson.encode(deps))
return answered({'merging', merge, subject})

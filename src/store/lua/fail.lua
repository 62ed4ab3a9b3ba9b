-- Records a failed attempt. KEYS, ARGV: see lib.lua; the task is declared (and
-- its recovery task and role, when one may be added, or the task a merge task
-- merges).
-- ARG: task, token, fence, error, retryable 0/1, backoff ms, recovery ('0' none,
-- '1' for the task's role, '2' for the role in ARG[8]), role.
-- Returns {'retrying'} | {'failed'} | {'recovering', recovery id} | {'lost'} | {'need', ...}.
local id, token, fence, err, retryable, backoff = ARG[1], ARG[2], ARG[3], ARG[4], ARG[5], tonumber(ARG[6])
local recovery, recovery_role = ARG[7], ARG[8]
if not holds(id, token, fence) then return {'lost'} end
-- A merge task failing for good fails the task waiting for it: declared first.
want_merge_subject(id)
if wanting() then return need() end
local t = redis.call('HMGET', task_key(id), 'attempt', 'kind', 'title', 'role', 'priority', 'approval', 'of')
local retry = retryable == '1' and tonumber(t[1]) < max_attempts()
-- Only planned work is recovered, and only once (the recovery is never recovered).
local rid = id .. '.recover'
local recover = not retry and recovery ~= '0' and (t[2] == false or t[2] == 'work')
-- What waited for the task waits for its recovery; a review of it reviews the
-- recovery, so every dependent is read.
local dependents = {}
if recover then
  want(rid)
  want_roles()
  local listed = redis.call('HGET', DEPENDENTS, id)
  if listed then dependents = cjson.decode(listed) end
  for _, d in ipairs(dependents) do want(d) end
  if wanting() then return need() end
  recover = not exists(rid)
end
-- A recovery that fails for good says what the task it recovered failed with:
-- the goal's failure then names both errors.
local recovering = not retry and t[2] == 'recover' and t[7]
if recovering then
  want(recovering)
  if wanting() then return need() end
  local first = redis.call('HGET', task_key(recovering), 'last_error') or 'no error recorded'
  err = err .. ' (recovering ' .. recovering .. ', which had failed with: ' .. first .. ')'
end
local now = now_ms()
redis.call('DEL', lock_key(id))
redis.call('SREM', RUNNING, id)
if retry then
  -- READY but backing off: it waits in DELAYED until claim promotes it.
  redis.call('HSET', task_key(id), 'status', 'READY', 'last_error', err, 'retry_at', now + backoff,
    'lease_expires', 0, 'updated_at', now)
  redis.call('ZADD', DELAYED, now + backoff, id)
  -- Claims look at DELAYED only while this flag says it may hold retries.
  redis.call('HSET', GOAL, 'delayed', '1')
  redis.call(PUBLISH, EVENTS, 'retry ' .. id)
  return {'retrying'}
end
if not recover then
  fail_for_good(id, err, now)
  return {'failed'}
end
-- FAILED for good, but not the goal: the recovery takes its place. The task leaves
-- the work to finish (`superseded`), the recovery joins it, and whatever waited
-- for the task waits for the recovery instead.
supersede(id, rid, err, now)
local role = t[4] or ''
if recovery == '2' then role = recovery_role end
add_task(rid, {title = 'Recover: ' .. (t[3] or id), kind = 'recover', of = id, notes = err,
  role = role, priority = t[5] or 0, approval = t[6] == '1', before = id, reruns = false}, now)
if #dependents > 0 then
  redis.call('HSET', DEPENDENTS, rid, cjson.encode(dependents))
  redis.call('HDEL', DEPENDENTS, id)
  for _, d in ipairs(dependents) do
    local deps = cjson.decode(redis.call('HGET', DEPS, d))
    for i, dep in ipairs(deps) do
      if dep == id then deps[i] = rid end
    end
    redis.call('HSET', DEPS, d, cjson.encode(deps))
    local f = redis.call('HMGET', task_key(d), 'kind', 'of')
    if f[1] == 'review' and f[2] == id then
      redis.call('HSET', task_key(d), 'of', rid)
      -- The plan's node too, edited as text: decoding and encoding it with cjson
      -- would turn its empty lists into objects. `of` is the node's last field
      -- (metadata before it may hold anything), so its last match is the field.
      local node = redis.call('HGET', NODES, d) or ''
      local from = '"of":"' .. id .. '"'
      local at, next_at = nil, string.find(node, from, 1, true)
      while next_at do
        at = next_at
        next_at = string.find(node, from, at + 1, true)
      end
      if at then
        redis.call('HSET', NODES, d,
          string.sub(node, 1, at - 1) .. '"of":"' .. rid .. '"' .. string.sub(node, at + #from))
      end
    end
  end
end
return {'recovering', rid}

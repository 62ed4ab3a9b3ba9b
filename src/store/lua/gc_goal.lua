-- Removes a finished goal past the retention (porki gc). KEYS, ARGV: see lib.lua;
-- every task of the plan (from NODES) and every role's index is declared.
-- ARG: retention ms, dry run ('1': change nothing, answer what would be removed).
-- A goal is removed once it is complete or failed, finished at least the
-- retention ago (server clock) and none of its tasks is still leased: every key
-- of it, the goal hash (with its spending) included. `goals` is another slot: the
-- caller takes the goal off it.
-- Returns {'gone'} (no goal hash) | {'kept', why} |
-- {'removed' or 'would', state, age ms, tasks} | {'need', ...}.
local f = redis.call('HMGET', GOAL, 'status', 'finished_at')
local state, finished = f[1], tonumber(f[2])
if not state then
  if redis.call('EXISTS', GOAL) == 1 then return {'kept', 'unplanned'} end
  return {'gone'}
end
if state ~= 'complete' and state ~= 'failed' then return {'kept', state} end
if not finished then return {'kept', 'unfinished'} end
local age = now_ms() - finished
if age < tonumber(ARG[1]) then return {'kept', 'recent'} end
local ids = redis.call('HKEYS', NODES)
for _, id in ipairs(ids) do want(id) end
want_roles()
if wanting() then return need() end
for _, id in ipairs(redis.call('SMEMBERS', RUNNING)) do
  if TASK[id] and redis.call('EXISTS', lock_key(id)) == 1 then return {'kept', 'leased'} end
end
if ARG[2] == '1' then return {'would', state, tostring(age), tostring(#ids)} end
for _, id in ipairs(ids) do redis.call('DEL', task_key(id), lock_key(id)) end
for _, role in ipairs(redis.call('SMEMBERS', ROLES)) do redis.call('DEL', ready_key(role)) end
redis.call('DEL', GOAL, READY, DELAYED, RUNNING, ROLES, NODES, DEPS, DEPENDENTS)
return {'removed', state, tostring(age), tostring(#ids)}

-- Removes a finished goal past the retention (porki gc). KEYS, ARGV: see lib.lua;
-- every task of the plan (from NODES) and every role's index is declared.
-- ARG: retention ms, dry run ('1': change nothing, answer what would be removed).
-- A goal is removed once it is complete or failed, finished at least the
-- retention ago (server clock) and none of its tasks is still leased: every key
-- of it, the goal hash (with its spending) included. A draft (a goal hash
-- without a plan's status, only what LLM calls spent) is removed once no call of
-- it is in flight and none reserved or settled tokens (`used_at`) for the
-- retention. `goals` is another slot: the caller takes the goal off it.
-- Returns {'gone'} (no goal hash) | {'kept', why} |
-- {'removed' or 'would', state, age ms, tasks} | {'need', ...}.
local f = redis.call('HMGET', GOAL, 'status', 'finished_at')
local state, finished = f[1], tonumber(f[2])
if not state then
  local fields = redis.call('HGETALL', GOAL)
  if #fields == 0 then return {'gone'} end
  local now, used = now_ms(), nil
  for i = 1, #fields, 2 do
    local name = fields[i]
    if name == 'used_at' then used = tonumber(fields[i + 1]) end
    if string.sub(name, 1, 9) == 'reserved:' then
      local expires = tonumber(string.match(fields[i + 1], ' (%d+)$'))
      if expires and expires > now then return {'kept', 'planning'} end
    end
  end
  if not used then return {'kept', 'unplanned'} end
  local age = now - used
  if age < tonumber(ARG[1]) then return {'kept', 'recent'} end
  if ARG[2] == '1' then return {'would', 'draft', tostring(age), '0'} end
  redis.call('DEL', GOAL)
  return {'removed', 'draft', tostring(age), '0'}
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

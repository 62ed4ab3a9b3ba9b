-- Hands a READY task to agents of another role ('' for any builder), keeping the
-- role the plan gave it (`planned_role`). KEYS, ARGV: see lib.lua; the task and
-- the new role are declared. ARG: task, role.
-- Returns {'ok'} | {'no_task'} | {'state', status} | {'need', ...}.
local id, role = ARG[1], ARG[2]
local t = redis.call('HMGET', task_key(id), 'status', 'role', 'priority', 'planned_role',
  'rank')
if not t[1] then return {'no_task'} end
if t[1] ~= 'READY' then return {'state', t[1]} end
want_roles()
if wanting() then return need() end
local old = t[2] or ''
if old == role then return {'ok'} end
local indexed = redis.call('ZREM', ready_key(old), id) == 1
if role == '' then
  redis.call('HDEL', task_key(id), 'role')
else
  redis.call('HSET', task_key(id), 'role', role)
  redis.call('SADD', ROLES, role)
end
if not t[4] and old ~= '' then redis.call('HSET', task_key(id), 'planned_role', old) end
redis.call('HSET', task_key(id), 'updated_at', now_ms())
-- A task backing off (in DELAYED) joins its new role's index when claim promotes it.
if indexed then
  index_ready(id, role, t[3], t[5])
  redis.call(PUBLISH, EVENTS, 'ready')
end
return {'ok'}

-- A goal's summary, read-only: the goal hash, and its tasks per state derived from
-- the indexes the task scripts keep anyway. READY = the ready indexes (roleless and
-- one per role) plus DELAYED (READY, backing off); RUNNING = the running set;
-- AWAITING_APPROVAL = the `awaiting` counter; DONE = total - remaining -
-- superseded (FAILED tasks whose work another took over: a recovery, the next
-- merge task, the task a merge task merges); FAILED = count_failed +
-- superseded; BLOCKED = the rest.
-- KEYS, ARGV: see lib.lua; every role's index is declared.
-- Returns {hash fields and values flat, {blocked, ready, running, awaiting, done, failed},
-- {role, READY tasks of it, …} with '' for tasks any agent may take}, all empty
-- if the goal has no hash | {'need', ...}.
local fields = redis.call('HGETALL', GOAL)
if #fields == 0 then return {{}, {}, {}} end
want_roles()
if wanting() then return need() end
local h = {}
for i = 1, #fields, 2 do h[fields[i]] = fields[i + 1] end
local total = tonumber(h.total) or 0
local roleless = redis.call('ZCARD', READY)
local by_role = {'', tostring(roleless)}
local ready = roleless + redis.call('ZCARD', DELAYED)
for _, role in ipairs(redis.call('SMEMBERS', ROLES)) do
  local n = redis.call('ZCARD', ready_key(role))
  ready = ready + n
  by_role[#by_role + 1] = role
  by_role[#by_role + 1] = tostring(n)
end
local running = redis.call('SCARD', RUNNING)
local superseded = tonumber(h.superseded) or 0
local done = tonumber(h.count_done) or 0
if h.remaining then done = total - tonumber(h.remaining) - superseded end
local failed = (tonumber(h.count_failed) or 0) + superseded
local awaiting = tonumber(h.awaiting) or 0
return {fields, {total - ready - running - awaiting - done - failed, ready, running, awaiting,
  done, failed}, by_role}

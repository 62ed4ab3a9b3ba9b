-- Stores a running goal's refreshed ranks (ranker.rs): each listed task's rank,
-- estimate and its source, re-scoring it in its READY index if it sits there,
-- and the goal's typical task for tasks added later (team_lib.lua rank_before).
-- KEYS, ARGV: see lib.lua; the listed tasks and every role are declared.
-- ARG: fingerprint of the plan the ranks were computed for, typical ms, then
-- JSON [[id, rank ms, estimate ms, source], ...].
-- A replanned goal (another fingerprint) is left alone, and so is a listed task
-- that no longer exists: ranks of another plan mean nothing.
-- Returns {'ok', tasks written} | {'stale'} | {'need', ...}.
if redis.call('HGET', GOAL, 'fingerprint') ~= ARG[1] then return {'stale'} end
local ranks = cjson.decode(ARG[3])
for _, r in ipairs(ranks) do want(r[1]) end
want_roles()
if wanting() then return need() end
local written = 0
for _, r in ipairs(ranks) do
  local id, rank = r[1], r[2]
  local key = task_key(id)
  local f = redis.call('HMGET', key, 'status', 'role', 'priority')
  if f[1] then
    redis.call('HSET', key, 'rank', rank, 'estimate', r[3], 'estimate_from', r[4])
    if f[1] == 'READY' then
      redis.call('ZADD', ready_key(f[2]), 'XX', ready_score(f[3], rank), id)
    end
    written = written + 1
  end
end
redis.call('HSET', GOAL, 'typical_ms', ARG[2])
return {'ok', tostring(written)}

-- Completes a held task, then claims the next one for the same agent, in one
-- script: a busy agent needs one round trip per task. Same rules as complete.lua
-- then claim.lua, one TIME for both; nothing is claimed if the lease is lost.
-- KEYS, ARGV: see lib.lua. ARG: task, token, fence, progress, artifacts JSON,
-- agent, role ('' for none), ttl ms, new token (also the completion's call id),
-- roleless tasks too (1/0), the held task needs approval ('1'/'0', '' unknown),
-- commit, diffstat.
-- Returns {{'lost'}} | {{'need', ...}} (nothing written) | {complete reply, claim
-- reply} (see complete_lib.lua, claim_lib.lua); a claim reply of {'need', ...}
-- means the task was completed and nothing claimed.
-- The same request sent again (a failover lost its answer and the client resent
-- it) claims nothing more: it is answered the task the first one claimed
-- (`next_claim` on the completed task) while that claim still holds it, else empty.
local id, token = ARG[1], ARG[9]
local function then_claim(now)
  return claim_next(ARG[6], ARG[7], tonumber(ARG[8]), token, now, nil, ARG[10] == '1')
end
local done, now, again, claimed = complete_held(id, ARG[2], ARG[3], ARG[4], ARG[5], token, ARG[11],
  ARG[12], ARG[13], then_claim)
if done[1] ~= 'ok' then return {done} end
if claimed then return {done, claimed} end
if not again then
  local claim = then_claim(now)
  if claim[1] == 'claimed' then redis.call('HSET', task_key(id), 'next_claim', claim[2]) end
  return {done, claim}
end
local next_id = redis.call('HGET', task_key(id), 'next_claim')
if not next_id then return {done, {'empty', ''}} end
-- Declared by the first send (it claimed it); `need` in case it was not.
want(next_id)
if wanting() then return {need()} end
local f = redis.call('HMGET', task_key(next_id), 'fence', 'attempt', 'approval', 'rank')
if redis.call('GET', lock_key(next_id)) ~= lock_value(token, f[1]) then
  return {done, {'empty', ''}}
end
local approval = '0'
if f[3] == '1' then approval = '1' end
return {done, {'claimed', next_id, f[1], f[2], redis.call('HGET', DEPENDENTS, next_id) or '', approval,
  f[4] or ''}}

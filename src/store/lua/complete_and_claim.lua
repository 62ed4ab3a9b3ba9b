-- Completes a held task, then claims the next one for the same agent, in one
-- script: a busy agent needs one round trip per task. Same rules as complete.lua
-- then claim.lua, one TIME for both; nothing is claimed if the lease is lost.
-- KEYS, ARGV: see lib.lua. ARG: task, token, fence, progress, artifacts JSON,
-- agent, role ('' for none), ttl ms, new token (also the completion's call id),
-- roleless tasks too (1/0), the held task needs approval ('1'/'0', '' unknown).
-- Returns {{'lost'}} | {{'need', ...}} (nothing written) | {complete reply, claim
-- reply} (see complete_lib.lua, claim_lib.lua); a claim reply of {'need', ...}
-- means the task was completed and nothing claimed.
local done, now = complete_held(ARG[1], ARG[2], ARG[3], ARG[4], ARG[5], ARG[9], ARG[11])
if done[1] ~= 'ok' then return {done} end
return {done, claim_next(ARG[6], ARG[7], tonumber(ARG[8]), ARG[9], now, nil, ARG[10] == '1')}

-- Completes a held task, then claims the next one for the same agent, in one
-- script: a busy agent needs one round trip per task. Same rules as complete.lua
-- then claim.lua, one TIME for both; nothing is claimed if the lease is lost.
-- ARGV: G, task, token, fence, progress, artifacts JSON, agent, role ('' for none),
-- ttl ms, new token.
-- Returns {{'lost'}} | {complete reply, claim reply} (see complete_lib.lua, claim_lib.lua).
local done, now = complete_held(ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
if done[1] == 'lost' then return {done} end
return {done, claim_next(ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[10], now)}

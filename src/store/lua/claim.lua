-- Claims the highest-priority READY task for an agent (see claim_lib.lua).
-- ARGV: G, agent, role ('' for none), ttl ms, token, preferred task ('' for none).
return claim_next(ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], nil, ARGV[6])

-- Claims the highest-priority READY task for an agent (see claim_lib.lua).
-- KEYS, ARGV: see lib.lua. ARG: agent, role ('' for none), ttl ms, token,
-- preferred task ('' for none), roleless tasks too (1/0).
return claim_next(ARG[1], ARG[2], tonumber(ARG[3]), ARG[4], nil, ARG[5], ARG[6] == '1')

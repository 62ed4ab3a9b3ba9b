-- Completes a task and promotes dependents (see complete_lib.lua).
-- ARGV: G, task, token, fence, progress, artifacts JSON.
-- Returns {'ok', goal complete 0/1, promoted ids...} | {'lost'}.
return (complete_held(ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]))

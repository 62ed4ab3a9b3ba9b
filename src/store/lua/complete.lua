-- Completes a task and promotes dependents (see complete_lib.lua).
-- KEYS, ARGV: see lib.lua; the task and its dependents are declared.
-- ARG: task, token, fence, progress, artifacts JSON, call id, needs approval
-- ('1'/'0', '' unknown), commit, diffstat (see complete_lib.lua).
-- Returns {'ok', goal complete 0/1, promoted ids...} | {'lost'} | {'need', ...}.
return (complete_held(ARG[1], ARG[2], ARG[3], ARG[4], ARG[5], ARG[6], ARG[7], ARG[8], ARG[9]))

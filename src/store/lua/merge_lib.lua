-- Merge tasks (docs/isolation.md), for the scripts that finish or fail tasks:
-- a merge task's end settles the task whose work it merges. Prepended before
-- complete_lib.lua and fail_lib.lua.

-- The task a merge task merges (its `of`), or nil when `id` (declared) is not
-- a merge task. Only the ids porki gives merge tasks (`.merge`, `.merge-N`)
-- are read, so other tasks cost no call.
local function merge_subject(id)
  if not (string.find(id, '%.merge$') or string.find(id, '%.merge%-%d+$')) then return nil end
  local f = redis.call('HMGET', task_key(id), 'kind', 'of')
  if f[1] == 'merge' and f[2] then return f[2] end
  return nil
end

-- Declares (with `want`) the task merge task `id` merges, if it is one.
local function want_merge_subject(id)
  local subject = merge_subject(id)
  if subject then want(subject) end
  return subject
end

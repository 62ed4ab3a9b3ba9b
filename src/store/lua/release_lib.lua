-- Giving a held task back, for release.lua and back_off.lua (want_roles first:
-- the task goes back into its role's index).
-- The task goes back to READY without counting the attempt; the lock is gone.
local function release_task(id, now)
  redis.call('DEL', lock_key(id))
  redis.call('SREM', RUNNING, id)
  local f = redis.call('HMGET', task_key(id), 'attempt', 'role', 'priority', 'rank')
  redis.call('HSET', task_key(id), 'status', 'READY', 'attempt', tonumber(f[1]) - 1,
    'lease_expires', 0, 'updated_at', now)
  index_ready(id, f[2], f[3], f[4])
end

-- The live lease an agent holds on a task of the goal, found again after a lost
-- reply (a complete_and_claim whose answer never came). Read only; the running
-- set holds at most one task per agent of the goal, so the scan is short.
-- ARGV: G, agent. Returns {id, token, fence, attempt} | {}.
local agent = ARGV[2]
for _, id in ipairs(redis.call('SMEMBERS', RUNNING)) do
  if redis.call('HGET', task_key(id), 'owner') == agent then
    local lock = redis.call('GET', lock_key(id))
    if lock then
      local token, fence = string.match(lock, '^(%S+) (%d+)$')
      local attempt = redis.call('HGET', task_key(id), 'attempt')
      return {id, token, fence, attempt}
    end
  end
end
return {}

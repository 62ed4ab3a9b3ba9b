-- The live lease an agent holds on a task of the goal, found again after a lost
-- reply (a complete_and_claim whose answer never came). Read only.
-- KEYS, ARGV: see lib.lua; every RUNNING task must be declared, else the answer
-- lists them (the caller's hint for next time). ARG: agent.
-- Returns {id, token, fence, attempt} | {} | {'need', ...}.
local agent = ARG[1]
local running = redis.call('SMEMBERS', RUNNING)
for _, id in ipairs(running) do want(id) end
if wanting() then return need(running) end
for _, id in ipairs(running) do
  local t = redis.call('HMGET', task_key(id), 'owner', 'attempt')
  if t[1] == agent then
    local lock = redis.call('GET', lock_key(id))
    if lock then
      local token, fence = string.match(lock, '^(%S+) (%d+)$')
      return {id, token, fence, t[2]}
    end
  end
end
return {}

-- Completes a task and promotes dependents whose dependencies are now all DONE.
-- ARGV: G, task, token, fence, progress, artifacts JSON.
-- Returns {'ok', goal complete 0/1, promoted ids...} | {'lost'}.
local id, token, fence = ARGV[2], ARGV[3], ARGV[4]
if not holds(id, token, fence) then return {'lost'} end
local now = now_ms()
redis.call('DEL', lock_key(id))
redis.call('SREM', RUNNING, id)
set_status(id, 'RUNNING', 'DONE', now)
redis.call('HSET', task_key(id), 'progress', ARGV[5], 'artifacts', ARGV[6], 'finished_at', now)
redis.call('HDEL', task_key(id), 'lease_expires')

local reply = {'ok', '0'}
local dependents = redis.call('HGET', DEPENDENTS, id)
if dependents then
  for _, d in ipairs(cjson.decode(dependents)) do
    local pending = redis.call('HINCRBY', task_key(d), 'pending', -1)
    if pending == 0 and redis.call('HGET', task_key(d), 'status') == 'BLOCKED' then
      set_status(d, 'BLOCKED', 'READY', now)
      index_ready(d)
      reply[#reply + 1] = d
    end
  end
end
redis.call('PUBLISH', EVENTS, 'done ' .. id)
if #reply > 2 then redis.call('PUBLISH', EVENTS, 'ready') end
local counts = redis.call('HMGET', GOAL, 'count_done', 'total')
if counts[1] == counts[2] then
  redis.call('HSET', GOAL, 'status', 'complete', 'finished_at', now)
  redis.call('PUBLISH', EVENTS, 'goal complete')
  reply[2] = '1'
end
return reply

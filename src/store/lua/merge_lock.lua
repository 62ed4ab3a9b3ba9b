-- Takes a goal's merge lock for the attempt holding a task's lease, only while
-- that lease holds: a holder whose lease was lost never starts a merge. The
-- lock holds `TOKEN TASK FENCE`; the same attempt asking again (a resend) gets
-- the lock it holds, renewed. KEYS: goal:{G}:merge, task:{G}:T:lock (one slot).
-- ARGV: lease token, fence, task, new lock token, ttl ms.
-- Returns {'acquired', token} | {'busy', holding task, ms left} | {'lost'}.
if redis.call('GET', KEYS[2]) ~= ARGV[1] .. ' ' .. ARGV[2] then return {'lost'} end
local held = redis.call('GET', KEYS[1])
if held then
  local token, task, fence = string.match(held, '^(%S+) (%S+) (%S+)$')
  if task == ARGV[3] and fence == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
    return {'acquired', token}
  end
  return {'busy', task or '', tostring(redis.call('PTTL', KEYS[1]))}
end
redis.call('SET', KEYS[1], ARGV[4] .. ' ' .. ARGV[3] .. ' ' .. ARGV[2], 'PX', ARGV[5])
return {'acquired', ARGV[4]}

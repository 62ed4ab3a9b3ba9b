-- Moves an agent's keys from before they were hash-tagged (agent:NAME:x) to where
-- they live now (agent:{NAME}:x), once, on a single Redis. KEYS: old, new, old,
-- new... An old key is renamed unless the new one exists, then it is deleted.
-- Returns how many keys moved.
local moved = 0
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('RENAMENX', KEYS[i], KEYS[i + 1]) == 1 then
      moved = moved + 1
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return moved

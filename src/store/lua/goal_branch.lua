-- Records a planned goal's branch and repository once: the first ones stay.
-- KEYS: goal:{G}. ARGV: branch, repository.
-- Returns {'ok', branch, repository} (as stored) | {'no_goal'}.
if redis.call('HEXISTS', KEYS[1], 'fingerprint') == 0 then return {'no_goal'} end
redis.call('HSETNX', KEYS[1], 'branch', ARGV[1])
redis.call('HSETNX', KEYS[1], 'repository', ARGV[2])
return {'ok', unpack(redis.call('HMGET', KEYS[1], 'branch', 'repository'))}

-- wrk script: GET /api/info?domain=t<N>.bench.test for a random N in
-- 1..10000 (the tenants bench/run loads), so the per-worker tenant cache
-- sees the whole set rather than one hot entry.
-- usage: wrk -s bench/info.lua http://127.0.0.1:PORT

local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
end

function init(args)
   -- Each thread has its own Lua state: seed each one differently.
   math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
   return wrk.format("GET", "/api/info?domain=t" .. math.random(1, 10000) .. ".bench.test")
end

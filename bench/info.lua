-- wrk script: GET /api/info?domain=t<N>.bench.test for a random N in
-- 1..TENANTS (the tenants bench/run loads; 10000 by default), so the
-- per-worker tenant cache sees the whole set rather than one hot entry.
-- With BENCH_DELAY_MS in the environment, each connection waits that long
-- between requests: a light load whose latency bench/run compares idle and
-- under a sign-in storm (wrk only schedules delays when delay() exists).
-- usage: [BENCH_DELAY_MS=N] wrk -s bench/info.lua http://127.0.0.1:PORT [-- TENANTS]

local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
end

local tenants = 10000
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")

if pause then
   function delay()
      return pause
   end
end

function init(args)
   tenants = tonumber(args[1] or "") or 10000
   -- Each thread has its own Lua state: seed each one differently.
   math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
   return wrk.format("GET", "/api/info?domain=t" .. math.random(1, tenants) .. ".bench.test")
end

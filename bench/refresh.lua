-- wrk script: POST /api/auth/refresh_token chains.  Each thread owns one
-- session and must have exactly one connection (wrk -tN -cN), so that its
-- request() and response() calls alternate along one chain: each response's
-- refresh_token goes into the next request.  Thread k takes line k of
-- TOKENFILE (one refresh token per line; bench/run signs the sessions in).
-- A non-200 response breaks the chain: the thread counts it and stops.
-- done() prints one line:
--   refresh_chains threads=32 broken=0 first_status=-
-- With BENCH_DELAY_MS in the environment, each chain waits that long between
-- refreshes (a light load for latency, as in bench/info.lua).
-- usage: [BENCH_DELAY_MS=N] wrk -tN -cN -s bench/refresh.lua http://127.0.0.1:PORT -- TOKENFILE

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

local token
local headers = { ["Content-Type"] = "application/json" }
broken = 0
status_seen = "-"
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")

if pause then
   function delay()
      return pause
   end
end

function init(args)
   local file = args[1]
   if not file then
      error("usage: wrk -s refresh.lua URL -- TOKENFILE")
   end
   local k = 0
   for line in io.lines(file) do
      k = k + 1
      if k == id then
         token = line
         break
      end
   end
   if not token or not token:match("^[%w_%-]+$") then
      error("refresh.lua: no refresh token for thread " .. tostring(id) .. " in " .. file)
   end
end

function request()
   return wrk.format("POST", "/api/auth/refresh_token", headers,
      '{"refresh_token":"' .. token .. '"}')
end

function response(status, hdrs, body)
   local next_token = status == 200 and body:match('"refresh_token"%s*:%s*"([%w_%-]+)"')
   if next_token then
      token = next_token
   elseif broken == 0 then
      broken = 1
      status_seen = tostring(status)
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local b, first = 0, "-"
   for _, t in ipairs(threads) do
      if t:get("broken") == 1 then
         b = b + 1
         if first == "-" then first = t:get("status_seen") end
      end
   end
   io.write(string.format("refresh_chains threads=%d broken=%d first_status=%s\n",
      #threads, b, first))
end

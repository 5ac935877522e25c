-- wrk script: POST /api/auth/sign_in with valid credentials, cycling over
-- the users bench1..bench<COUNT> of one tenant (bench/run creates them, all
-- with the same password), each thread starting at its own offset.
-- usage: wrk -s bench/sign_in.lua http://127.0.0.1:PORT -- COUNT PASSWORD [DOMAIN]
--   DOMAIN defaults to t1.bench.test

local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
end

local function json_string(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
   end) .. '"'
end

local headers = { ["Content-Type"] = "application/json" }
local tail, n, i = "", 0, 0

function init(args)
   local count = tonumber(args[1])
   local password = args[2]
   local domain = args[3] or "t1.bench.test"
   if not count or count < 1 or not password then
      error("usage: wrk -s sign_in.lua URL -- COUNT PASSWORD [DOMAIN]")
   end
   -- Built per request (a million users do not fit in memory as requests;
   -- formatting costs microseconds against milliseconds of hashing).
   tail = ',"password":' .. json_string(password) .. ',"domain":' .. json_string(domain) .. '}'
   n = count
   -- Threads start far apart in the cycle (ids 1, 2, ... from setup()).
   i = ((id or 1) - 1) * 7919 % n
end

function request()
   i = i % n + 1
   return wrk.format("POST", "/api/auth/sign_in", headers, '{"username":"bench' .. i .. '"' .. tail)
end

-- wrk script: GET /api/auth/user with the access token of one session,
-- read from TOKENFILE's first line (bench/run signs the session in), so the
-- token stays off the command line.
-- usage: wrk -s bench/user.lua http://127.0.0.1:PORT -- TOKENFILE

local headers

function init(args)
   local file = args[1]
   if not file then
      error("usage: wrk -s user.lua URL -- TOKENFILE")
   end
   local token = io.lines(file)()
   if not token or not token:match("^[%w_%-]+$") then
      error("user.lua: no access token in " .. file)
   end
   headers = { ["Authorization"] = "Bearer " .. token }
end

function request()
   return wrk.format("GET", "/api/auth/user", headers)
end

-- wrk script: GET a location behind the gate (auth_request) with the bearer
-- token of a session drawn at random from TOKENFILE (one token per line;
-- bench/run creates the sessions), or, with "seq", the threads walking the
-- file from offsets spread evenly over it (fills the workers' caches: a
-- pass of as many requests as tokens sends each token once).
-- usage: wrk -s bench/gate.lua URL -- TOKENFILE [seq THREADS]

local tokens, seq, pos = {}, false, 0
local threads = 0

-- In wrk's main state, before each thread's init: numbers the threads.
function setup(thread)
   thread:set("thread_no", threads)
   threads = threads + 1
end

function init(args)
   if not args[1] then
      error("usage: wrk -s gate.lua URL -- TOKENFILE [seq THREADS]")
   end
   for line in io.lines(args[1]) do
      tokens[#tokens + 1] = "Bearer " .. line
   end
   if #tokens == 0 then
      error("gate.lua: no tokens in " .. args[1])
   end
   seq = args[2] == "seq"
   math.randomseed(os.time() + math.floor(os.clock() * 1e6) + #tostring({}) * 7919)
   local n = tonumber(args[3] or "")
   if seq and thread_no and n and n > 0 then
      pos = math.floor(thread_no * #tokens / n)
   else
      pos = math.random(#tokens)
   end
end

function request()
   local t
   if seq then
      pos = pos % #tokens + 1
      t = tokens[pos]
   else
      t = tokens[math.random(#tokens)]
   end
   return wrk.format("GET", nil, { ["Authorization"] = t })
end

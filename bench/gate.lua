-- wrk script: GET a location behind the gate (auth_request) with the bearer
-- token of a session drawn at random from TOKENFILE (one token per line;
-- bench/run creates the sessions), or, with "seq", each thread walking the
-- file from its own offset (fills the workers' caches).
-- usage: wrk -s bench/gate.lua URL -- TOKENFILE [seq]

local tokens, seq, pos = {}, false, 0

function init(args)
   if not args[1] then
      error("usage: wrk -s gate.lua URL -- TOKENFILE [seq]")
   end
   for line in io.lines(args[1]) do
      tokens[#tokens + 1] = "Bearer " .. line
   end
   if #tokens == 0 then
      error("gate.lua: no tokens in " .. args[1])
   end
   seq = args[2] == "seq"
   math.randomseed(os.time() + math.floor(os.clock() * 1e6) + #tostring({}) * 7919)
   pos = math.random(#tokens)
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

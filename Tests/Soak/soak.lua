-- wrk script for Tests/Soak/soak.py: each thread cycles through a fixed mix of requests and keeps
-- its own tallies; done() prints one parseable line ("SOAK-WRK {json}") with the totals.
--
-- Environment: SOAK_TOKENS - a file with two lines: an admitted user's token, then an outsider's.
-- Mix per 20 requests: 14 GET with the admitted token (200), 3 POST of 5/10/15 KiB (200),
-- 2 GET without a token (401), 1 GET with the outsider's token (403).

local HEADER = "x-goog-iap-jwt-assertion"
local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function init(args)
   local f = assert(io.open(os.getenv("SOAK_TOKENS"), "r"))
   local valid = f:read("*l")
   local outsider = f:read("*l")
   f:close()
   local mix = {}
   for i = 1, 14 do
      mix[#mix + 1] = wrk.format("GET", "/soak/ok/" .. tid .. "/" .. i, { [HEADER] = valid })
   end
   for i = 1, 3 do
      mix[#mix + 1] = wrk.format("POST", "/soak/post/" .. i,
         { [HEADER] = valid, ["Content-Type"] = "application/octet-stream" }, string.rep("p", 5120 * i))
   end
   mix[#mix + 1] = wrk.format("GET", "/soak/deny/1", {})
   mix[#mix + 1] = wrk.format("GET", "/soak/deny/2", {})
   mix[#mix + 1] = wrk.format("GET", "/soak/outsider", { [HEADER] = outsider })
   -- interleave: ok, ok, post, ok, deny, ... (a fixed shuffle, the same for every thread)
   local order = { 1, 2, 15, 3, 18, 4, 5, 16, 6, 20, 7, 8, 17, 9, 19, 10, 11, 12, 13, 14 }
   requests = {}
   for i, k in ipairs(order) do requests[i] = mix[k] end
   n = 0
   sent = 0
   counts = {}
   wrong = 0
end

function request()
   n = n % #requests + 1
   sent = sent + 1
   return requests[n]
end

function response(status, headers, body)
   counts[status] = (counts[status] or 0) + 1
   -- a 200 must be echo's answer to an admitted request
   if status == 200 and (not body:find('"target":"/soak/', 1, true) or body:find('"/soak/deny', 1, true)
                         or body:find('"/soak/outsider', 1, true)) then
      wrong = wrong + 1
   end
end

function done(summary, latency, requests)
   local statuses, wrong_total, sent_total = {}, 0, 0
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("counts")) do
         statuses[status] = (statuses[status] or 0) + count
      end
      wrong_total = wrong_total + thread:get("wrong")
      sent_total = sent_total + thread:get("sent")
   end
   local parts = {}
   for status, count in pairs(statuses) do parts[#parts + 1] = string.format('"%d":%d', status, count) end
   local e = summary.errors
   io.write(string.format(
      'SOAK-WRK {"requests":%d,"sent":%d,"statuses":{%s},"wrong":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"p50_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f}\n',
      summary.requests, sent_total, table.concat(parts, ","), wrong_total, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end

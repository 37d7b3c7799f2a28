-- wrk script for bench/run.sh: adds the IAP header and prints one parseable result line.
--
-- Environment (read when the script loads, because wrk decides static vs per-request mode then):
--   BENCH_WRK_MODE     none   - no token header
--                      static - the first token in BENCH_WRK_TOKENS on every request
--                      pool   - a different token per request, cycling through BENCH_WRK_TOKENS
--   BENCH_WRK_TOKENS   token file, one per line
--   BENCH_WRK_THREADS  wrk's -t (pool mode gives thread t the tokens t, t+n, t+2n, ...)

local HEADER = "x-goog-iap-jwt-assertion"
local mode = os.getenv("BENCH_WRK_MODE") or "none"
local token_file = os.getenv("BENCH_WRK_TOKENS")
local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")

-- Main state: remember the threads so done() can collect their counters.
local threads = {}
function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function init(args)
   sent = 0
   slice = 0
   if mode == "static" then
      local f = assert(io.open(token_file, "r"))
      wrk.headers[HEADER] = f:read("*l")
      f:close()
   elseif mode == "pool" then
      tokens = {}
      local i = 0
      for line in io.lines(token_file) do
         if i % nthreads == tid and #line > 0 then tokens[#tokens + 1] = line end
         i = i + 1
      end
      slice = #tokens
      assert(slice > 0, "empty token pool")
      headers = {}
      for k, v in pairs(wrk.headers) do headers[k] = v end
   end
end

if mode == "pool" then
   -- Defined only in pool mode: any request() makes wrk build every request in Lua.
   function request()
      sent = sent + 1
      headers[HEADER] = tokens[(sent - 1) % slice + 1]
      return wrk.format(nil, nil, headers)
   end
end

function done(summary, latency, requests)
   local sent_total, pool, reuse = 0, 0, 0
   for _, t in ipairs(threads) do
      local s, n = t:get("sent") or 0, t:get("slice") or 0
      sent_total, pool = sent_total + s, pool + n
      if n > 0 and s > n then reuse = reuse + (s - n) end
   end
   local e = summary.errors
   io.write(string.format(
      "WRKRESULT requests=%d duration_us=%d bytes=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f " ..
      "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d tokens_sent=%d token_pool=%d token_reuse=%d\n",
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout, sent_total, pool, reuse))
end

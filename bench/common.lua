-- Shared by every bench/*.lua wrk script (loaded with dofile from BENCH_DIR).
--
-- The run's data (users with their ids and tokens, key counts, a run id) comes from the
-- file the prepare step wrote, named by BENCH_DATA. Each wrk thread numbers itself from
-- setup(); each script builds its own requests from that thread id and a per-thread
-- counter, so requests are valid and, where needed, distinct.
--
-- Every response's status is counted per thread; done() adds them up across threads and
-- prints one line `BENCH_JSON {...}` with the rate, latency percentiles and status counts.

dofile(assert(os.getenv("BENCH_DATA"), "BENCH_DATA is not set"))

ENDPOINT = os.getenv("BENCH_ENDPOINT") or "?"

local threads = {}
local next_tid = 1

function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

tid = 0        -- replaced by setup() in each thread's environment
counter = 0    -- requests built by this thread
codes = {}     -- status -> count, per thread

function init(args)
   -- A different random sequence per thread.
   math.randomseed(os.time() * 100 + tid)
end

function response(status, headers, body)
   codes[status] = (codes[status] or 0) + 1
end

-- The JSON headers of an authenticated request of `user`.
function auth_headers(user, with_body)
   local h = { ["Authorization"] = "Bearer " .. user.token }
   if with_body then h["Content-Type"] = "application/json" end
   return h
end

function pick_user()
   return USERS[math.random(#USERS)]
end

local function pct(latency, p)
   return latency:percentile(p) / 1000.0
end

function done(summary, latency, requests)
   local agg, total = {}, 0
   for _, thread in ipairs(threads) do
      local c = thread:get("codes") or {}
      for status, n in pairs(c) do
         agg[status] = (agg[status] or 0) + n
         total = total + n
      end
   end
   local non2xx = 0
   local parts = {}
   for status, n in pairs(agg) do
      if status < 200 or status > 299 then non2xx = non2xx + n end
      table.insert(parts, string.format('"%d":%d', status, n))
   end
   local e = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      'BENCH_JSON {"endpoint":"%s","requests":%d,"seconds":%.3f,"rps":%.1f,' ..
      '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,' ..
      '"non2xx":%d,"codes":{%s},"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
      ENDPOINT, summary.requests, seconds, summary.requests / seconds,
      pct(latency, 50), pct(latency, 90), pct(latency, 99), latency.max / 1000.0, latency.mean / 1000.0,
      non2xx, table.concat(parts, ","), e.connect, e.read, e.write, e.timeout))
end

-- The wrk script of every bench/run.sh phase: BENCH_ENDPOINT names the endpoint, BENCH_DATA the
-- Lua file bench/prepare.py wrote (USERS with their ids and tokens, PASSWORD, VALUE, RUN, key
-- counts). Each wrk thread numbers itself in setup(); requests are built from that thread id and
-- a per-thread counter, so that they are valid and, where needed, distinct (BENCH_KEY_TAG, if
-- set, goes into the keys that store creates, so that several runs of store on one database each
-- store new keys). done() prints one line `BENCH_JSON {...}`: the rate, latency percentiles and
-- every status code counted (for retrieve, the answers under 400 and those of 400 or more: see
-- response()); for list, also the pages that were not 200 with LIST_LIMIT keys.

dofile(assert(os.getenv("BENCH_DATA"), "BENCH_DATA is not set"))
local endpoint = assert(os.getenv("BENCH_ENDPOINT"), "BENCH_ENDPOINT is not set")
local key_tag = os.getenv("BENCH_KEY_TAG") or ""
local LIST_LIMIT = 100

local threads, next_tid = {}, 1
function setup(thread)
   thread:set("tid", next_tid)
   thread:set("threads_count", tonumber(os.getenv("BENCH_THREADS") or "2"))
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

tid, threads_count, counter, codes = 0, 2, 0, {} -- per thread (setup() sets tid, threads_count)
pages, short_pages, last_pages = 0, 0, 0 -- list: 200 answers, those without LIST_LIMIT keys, null cursors
local cursor = nil -- list: the last next_cursor this thread saw (nil: from the first page)
-- refresh: this thread's share of REFRESH_TOKENS, each good for one refresh; an answer's new
-- refresh token goes back in the queue (the thread's connections share it)
local refresh_queue = {}
function init(args)
   math.randomseed(os.time() * 100 + tid)
   if endpoint == "refresh" then
      for i, token in ipairs(REFRESH_TOKENS) do
         if i % threads_count == tid - 1 then table.insert(refresh_queue, token) end
      end
   end
end

-- list: follows next_cursor (URL-safe base64 without padding: no encoding needed); null, the
-- last page, starts again from the first. The thread's connections share one cursor, so a page
-- may be asked for by several of them.
local function follow(status, body)
   if status ~= 200 then return end
   pages = pages + 1
   -- plain finds, no copy of the body: wrk's CPU is the server's on this machine
   local keys, at = 0, 1
   while true do
      at = string.find(body, '"keyN":', at, true)
      if not at then break end
      keys, at = keys + 1, at + 7
   end
   if keys ~= LIST_LIMIT then short_pages = short_pages + 1 end
   -- next_cursor ends the body: {"status":..,"data":{"keys":[..],"next_cursor":"<cursor>"|null}}
   local next_cursor = string.match(body, '"next_cursor":"([%w_%-]+)"', math.max(1, #body - 300))
   if next_cursor == nil then last_pages = last_pages + 1 end
   cursor = next_cursor
end

-- Every answer's status counted, and list's and refresh's bodies read. Not for retrieve: wrk
-- hands each answer's headers and body to Lua only when this function exists, which costs it
-- about 2 us of CPU per request (a thirtieth of a retrieve's), taken from the server on this
-- machine; retrieve's failures are wrk's own count of answers of 400 or more (see done()).
if endpoint ~= "retrieve" then
   function response(status, headers, body)
      codes[status] = (codes[status] or 0) + 1
      if endpoint == "list" then follow(status, body) end
      if endpoint == "refresh" and status == 200 then
         table.insert(refresh_queue, string.match(body, '"refresh_token":"([%w_%-]+)"'))
      end
   end
end

local json = { ["Content-Type"] = "application/json" }
local function auth(user, with_body)
   local h = { ["Authorization"] = "Bearer " .. user.token }
   if with_body then h["Content-Type"] = "application/json" end
   return h
end
local function random_user() return USERS[math.random(#USERS)] end

local requests = {
   -- an existing key r0 .. r<KEYS_PER_USER-1> of a random user
   retrieve = function()
      return wrk.format("GET", "/data/retrieve/r" .. math.random(0, KEYS_PER_USER - 1), auth(random_user()))
   end,
   -- a key nobody holds yet (run id + thread id + counter), spread over the users
   store = function()
      local body = string.format('{"keyN":"s%s%s-%d-%d","valueN":"%s"}', RUN, key_tag, tid, counter, VALUE)
      return wrk.format("POST", "/data/store", auth(USERS[counter % #USERS + 1], true), body)
   end,
   -- an existing key u0 .. u<KEYS_PER_USER-1> of a random user, with a new value each time
   update = function()
      local body = string.format('{"valueN":"%s-%d-%d"}', VALUE, tid, counter)
      local path = "/data/update/u" .. math.random(0, KEYS_PER_USER - 1)
      return wrk.format("PUT", path, auth(random_user(), true), body)
   end,
   -- a key prepared for this thread (d<tid>-<n>, held by user n % #USERS), each one once; should
   -- the run outrun the DELETE_KEYS_PER_THREAD keys, the extra requests count as the 404s they are
   delete = function()
      local path = string.format("/data/delete/d%d-%d", tid, counter - 1)
      return wrk.format("DELETE", path, auth(USERS[(counter - 1) % #USERS + 1]))
   end,
   -- the correct credentials of the users, in turn
   token = function()
      local user = USERS[(counter + tid) % #USERS + 1]
      local body = string.format('{"username":"%s","password":"%s"}', user.name, PASSWORD)
      return wrk.format("POST", "/auth/token", json, body)
   end,
   -- the oldest refresh token of this thread's queue (none left: an invalid one, a 401)
   refresh = function()
      local token = table.remove(refresh_queue, 1) or "none-left"
      return wrk.format("POST", "/auth/refresh", json, string.format('{"refresh_token":"%s"}', token))
   end,
   -- a new username and email (run id + thread id + counter)
   register = function()
      local name = string.format("r%s_t%d_%d", RUN, tid, counter)
      local body = string.format('{"username":"%s","email":"%s@bench.example","password":"%s",' ..
         '"full_name":"Bench User","age":30,"gender":"other"}', name, name, PASSWORD)
      return wrk.format("POST", "/auth/register", json, body)
   end,
   -- the first user's keys l*, LIST_LIMIT a page, from the last cursor this thread saw
   list = function()
      local path = "/data/list?prefix=l&limit=" .. LIST_LIMIT
      if cursor then path = path .. "&cursor=" .. cursor end
      return wrk.format("GET", path, auth(USERS[1]))
   end,
}
local build = assert(requests[endpoint], "unknown BENCH_ENDPOINT " .. endpoint)
function request()
   counter = counter + 1
   return build()
end

function done(summary, latency, _)
   local all, non2xx, parts, list = {}, 0, {}, ""
   local listed = { pages = 0, short_pages = 0, last_pages = 0 }
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("codes") or {}) do all[status] = (all[status] or 0) + n end
      for name in pairs(listed) do listed[name] = listed[name] + (thread:get(name) or 0) end
   end
   if endpoint == "list" then
      list = string.format(',"list":{"limit":%d,"pages":%d,"short_pages":%d,"last_pages":%d}',
         LIST_LIMIT, listed.pages, listed.short_pages, listed.last_pages)
   end
   local e, seconds = summary.errors, summary.duration / 1e6
   for status, n in pairs(all) do
      if status < 200 or status > 299 then non2xx = non2xx + n end
      table.insert(parts, string.format('"%d":%d', status, n))
   end
   if endpoint == "retrieve" then -- no response(): wrk counts the answers of 400 or more
      non2xx = e.status
      parts = { string.format('"under 400":%d,"400 or more":%d', summary.requests - e.status, e.status) }
   end
   local function ms(p) return latency:percentile(p) / 1000.0 end
   -- how many requests took longer than 50 ms: the rank of 50 ms among the latencies (wrk
   -- records every request's), found by bisection, so that runs can be added up exactly
   local over_50ms = 0
   if latency.max > 50000 then
      local low, high = 0, 100
      for _ = 1, 50 do
         local middle = (low + high) / 2
         if latency:percentile(middle) <= 50000 then low = middle else high = middle end
      end
      over_50ms = math.floor(summary.requests * (100 - low) / 100 + 0.5)
   end
   io.write(string.format(
      'BENCH_JSON {"endpoint":"%s","requests":%d,"seconds":%.3f,"rps":%.1f,' ..
      '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,"over_50ms":%d,' ..
      '"non2xx":%d,"codes":{%s},"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}%s}\n',
      endpoint, summary.requests, seconds, summary.requests / seconds, ms(50), ms(90), ms(99),
      latency.max / 1000.0, latency.mean / 1000.0, over_50ms, non2xx, table.concat(parts, ","),
      e.connect, e.read, e.write, e.timeout, list))
end

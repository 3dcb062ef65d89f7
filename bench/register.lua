-- POST /auth/register: a new, unique username and email per request
-- (run id + thread id + counter), so every answer should be 200.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

function request()
   counter = counter + 1
   local name = string.format("r%s_t%d_%d", RUN, tid, counter)
   local body = string.format(
      '{"username":"%s","email":"%s@bench.example","password":"%s",' ..
      '"full_name":"Bench User","age":30,"gender":"other"}', name, name, PASSWORD)
   return wrk.format("POST", "/auth/register", { ["Content-Type"] = "application/json" }, body)
end

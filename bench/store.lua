-- POST /data/store: a key no one holds yet on every request (run id + thread id + counter),
-- spread over the prepared users.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

function request()
   counter = counter + 1
   local user = USERS[counter % #USERS + 1]
   local body = string.format('{"keyN":"s%s-%d-%d","valueN":"%s"}', RUN, tid, counter, VALUE)
   return wrk.format("POST", "/data/store", auth_headers(user, true), body)
end

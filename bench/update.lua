-- PUT /data/update/{key}: an existing key (u0 .. u<KEYS_PER_USER-1>) of a random user,
-- with a value that changes on every request.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

function request()
   counter = counter + 1
   local user = pick_user()
   local path = "/data/update/u" .. math.random(0, KEYS_PER_USER - 1)
   local body = string.format('{"valueN":"%s-%d-%d"}', VALUE, tid, counter)
   return wrk.format("PUT", path, auth_headers(user, true), body)
end

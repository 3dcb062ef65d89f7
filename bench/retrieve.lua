-- GET /data/retrieve/{key}: an existing key (r0 .. r<KEYS_PER_USER-1>) of a random user.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

function request()
   local user = pick_user()
   local path = "/data/retrieve/r" .. math.random(0, KEYS_PER_USER - 1)
   return wrk.format("GET", path, auth_headers(user, false))
end

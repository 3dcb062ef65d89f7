-- POST /auth/token: correct credentials of the prepared users, in turn.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

function request()
   counter = counter + 1
   local user = USERS[(counter + tid) % #USERS + 1]
   local body = string.format('{"username":"%s","password":"%s"}', user.name, PASSWORD)
   return wrk.format("POST", "/auth/token", { ["Content-Type"] = "application/json" }, body)
end

-- DELETE /data/delete/{key}: each request deletes one key the prepare step created for this
-- thread (d<tid>-<n>, held by user n % #USERS), never the same one twice. Should the run
-- outrun the DELETE_KEYS_PER_THREAD keys prepared, the extra requests name missing keys and
-- are counted as the 404s they are.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

function request()
   local n = counter
   counter = counter + 1
   local user = USERS[n % #USERS + 1]
   return wrk.format("DELETE", string.format("/data/delete/d%d-%d", tid, n), auth_headers(user, false))
end

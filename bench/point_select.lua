#!/usr/bin/env sysbench
-- The stricter of bench/run.sh's two raw-MariaDB references for GET /data/retrieve (the
-- target's is mariadb-slap): the service's own query, on the same table and the same prepared
-- entries, as a server-side prepared statement (the binary protocol sqlx uses), one round trip
-- per query, no transaction around it.
--   SELECT value FROM entries WHERE user_id = ? AND entry_key = ?
-- with a random user (of the ids in BENCH_USER_IDS, comma-separated) and a random key
-- r0 .. r<BENCH_KEYS-1>, the distribution bench/retrieve.lua requests.
-- Run: sysbench bench/point_select.lua --mysql-... --threads=16 --time=10 run

local user_ids = {}
for id in string.gmatch(os.getenv("BENCH_USER_IDS") or "", "%d+") do
   table.insert(user_ids, tonumber(id))
end
local keys = tonumber(os.getenv("BENCH_KEYS") or "1000")

function thread_init()
   drv = sysbench.sql.driver()
   con = drv:connect()
   stmt = con:prepare("SELECT value FROM entries WHERE user_id = ? AND entry_key = ?")
   params = {
      stmt:bind_create(sysbench.sql.type.BIGINT),
      stmt:bind_create(sysbench.sql.type.VARCHAR, 1020),
   }
   stmt:bind_param(unpack(params))
end

function event()
   params[1]:set(user_ids[sysbench.rand.uniform(1, #user_ids)])
   params[2]:set("r" .. sysbench.rand.uniform(0, keys - 1))
   local rs = stmt:execute()
   if rs ~= nil then rs:free() end
end

function thread_done()
   stmt:close()
   con:disconnect()
end

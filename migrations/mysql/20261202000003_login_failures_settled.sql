-- Login throttling counts failures only, not attempts in flight (see shared/src/store/throttle.rs).
-- settled: FALSE while the attempt's password is being checked, TRUE once it was found wrong.
-- A row counts as a failure when it is settled, or when it has stayed unsettled for longer than
-- a grace period (its attempt ended without a verdict: the client went away, or an error); an
-- unsettled row younger than that is an attempt in flight, which makes other attempts of its
-- username or address wait but never throttles them.
-- The rows already here were failures, or attempts in flight that counted as failures: they
-- stay failures.
ALTER TABLE login_failures ADD COLUMN settled BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE login_failures SET settled = TRUE;

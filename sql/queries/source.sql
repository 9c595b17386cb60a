-- name: read_only
-- Every warehouse read is its own READ ONLY transaction (first statement of it).
SET TRANSACTION READ ONLY

-- name: statement_timeout
-- Local to the read's transaction; set_config takes the value as a bound parameter.
SELECT set_config('statement_timeout', :timeout_ms, true)

-- name: read_only
-- Every warehouse read is its own READ ONLY transaction (first statement of it).
SET TRANSACTION READ ONLY

-- name: statement_timeout
-- Local to the read's transaction; set_config takes the value as a bound parameter.
SELECT set_config('statement_timeout', :timeout_ms, true)

-- name: table_columns
-- The columns of a source table and their types, in table order (for `assay init` and for
-- leaving out canonical fields the table does not have).
SELECT column_name, data_type, udt_name FROM information_schema.columns
WHERE table_schema = coalesce(:schema, current_schema()) AND table_name = :table
ORDER BY ordinal_position

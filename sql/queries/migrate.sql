-- name: lock_migrations
SELECT pg_advisory_lock(:key)

-- name: unlock_migrations
SELECT pg_advisory_unlock(:key)

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS assay

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS assay.schema_migrations (
    name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())

-- name: applied_migrations
SELECT name FROM assay.schema_migrations

-- name: record_migration
INSERT INTO assay.schema_migrations (name) VALUES (:name)

-- name: scored_spans
-- Per deployment, the first and last log time scored (upgrading to rollups builds them once).
SELECT deployment, min(log_ts), max(log_ts) FROM assay.scores GROUP BY 1

-- name: lock_migrations
SELECT pg_advisory_lock(:key)

-- name: unlock_migrations
SELECT pg_advisory_unlock(:key)

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS assay

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS assay.schema_migrations (
    name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())

-- name: add_migration_checksums
-- The migrator's own bookkeeping: what each applied file held (sha256), so an edit is noticed.
ALTER TABLE assay.schema_migrations ADD COLUMN IF NOT EXISTS checksum text

-- name: applied_migrations
SELECT name, checksum FROM assay.schema_migrations

-- name: record_migration
INSERT INTO assay.schema_migrations (name, checksum) VALUES (:name, :checksum)

-- name: remember_checksum
-- Files applied before checksums were kept: their content now is what later runs compare with
-- (the migrations that repair the two in-place edits bring such databases up to date).
UPDATE assay.schema_migrations SET checksum = :checksum WHERE name = :name AND checksum IS NULL

-- name: scored_spans
-- Per deployment, the first and last log time scored (upgrading to rollups builds them once).
SELECT deployment, min(log_ts), max(log_ts) FROM assay.scores GROUP BY 1

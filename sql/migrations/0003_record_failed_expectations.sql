-- Data contract: which expectations a quarantined log failed (besides the readable reasons),
-- so quarantine can be grouped and counted by expectation.
ALTER TABLE assay.quarantine ADD COLUMN expectations text[] NOT NULL DEFAULT '{}';
CREATE INDEX quarantine_deployment_created ON assay.quarantine (deployment, created_at DESC);

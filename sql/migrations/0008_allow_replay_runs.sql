-- Quarantine replays are runs of their own kind (they neither move the watermark nor skip
-- what is scored, and the data contract cannot stop them).
ALTER TABLE assay.eval_runs DROP CONSTRAINT IF EXISTS eval_runs_kind_check;
ALTER TABLE assay.eval_runs ADD CONSTRAINT eval_runs_kind_check
    CHECK (kind IN ('scheduled', 'manual', 'backfill', 'replay'));

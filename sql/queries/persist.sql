-- name: create_staging
CREATE TEMP TABLE IF NOT EXISTS assay_scores_staging
    (LIKE assay.scores INCLUDING DEFAULTS) ON COMMIT DELETE ROWS

-- name: merge_staging
INSERT INTO assay.scores SELECT * FROM assay_scores_staging
ON CONFLICT (deployment, log_id, evaluator, evaluator_version) DO NOTHING

-- name: insert_quarantine
-- A log quarantined again (a rerun, or still broken) keeps its latest run and reasons.
INSERT INTO assay.quarantine
    (deployment, log_id, log_ts, run_id, stage, reasons, expectations, raw)
VALUES (:deployment, :log_id, :log_ts, :run_id, :stage, CAST(:reasons AS jsonb),
        :expectations, CAST(:raw AS jsonb))
ON CONFLICT (deployment, log_id) DO UPDATE
SET log_ts = EXCLUDED.log_ts, run_id = EXCLUDED.run_id, stage = EXCLUDED.stage,
    reasons = EXCLUDED.reasons, expectations = EXCLUDED.expectations, raw = EXCLUDED.raw,
    created_at = now()

-- name: readmit_quarantined
-- Logs that pass the contract now (the source was fixed) leave quarantine as they are scored.
DELETE FROM assay.quarantine WHERE deployment = :deployment AND log_id = ANY(:log_ids)

-- name: upsert_watermark
INSERT INTO assay.watermarks (deployment, ts, log_id, run_id, updated_at)
VALUES (:deployment, :ts, :log_id, :run_id, now())
ON CONFLICT (deployment) DO UPDATE
SET ts = EXCLUDED.ts, log_id = EXCLUDED.log_id, run_id = EXCLUDED.run_id, updated_at = now()

-- name: add_run_counts
UPDATE assay.eval_runs
SET pulled = pulled + :pulled,
    normalized = normalized + :normalized,
    quarantined = quarantined + :quarantined,
    scored = scored + :scored,
    errors = errors + :errors,
    skipped = skipped + :skipped
WHERE run_id = :run_id

-- name: scored_log_ids
SELECT log_id FROM assay.scores
WHERE deployment = :deployment AND evaluator = :evaluator AND evaluator_version = :version
  AND log_id = ANY(:log_ids)

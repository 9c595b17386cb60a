-- name: create_staging
CREATE TEMP TABLE IF NOT EXISTS assay_scores_staging
    (LIKE assay.scores INCLUDING DEFAULTS) ON COMMIT DELETE ROWS

-- name: merge_staging
INSERT INTO assay.scores SELECT * FROM assay_scores_staging
ON CONFLICT (deployment, log_id, evaluator, evaluator_version) DO NOTHING

-- name: insert_quarantine
INSERT INTO assay.quarantine (deployment, log_id, log_ts, run_id, stage, reasons, raw)
VALUES (:deployment, :log_id, :log_ts, :run_id, :stage, CAST(:reasons AS jsonb), CAST(:raw AS jsonb))
ON CONFLICT (deployment, log_id) DO NOTHING

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

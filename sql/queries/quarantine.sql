-- name: list_quarantine
SELECT deployment, log_id, log_ts, run_id::text AS run_id, stage, expectations, reasons,
       created_at
FROM assay.quarantine
WHERE (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
  AND (CAST(:run_id AS uuid) IS NULL OR run_id = CAST(:run_id AS uuid))
ORDER BY log_ts DESC NULLS LAST, created_at DESC, deployment, log_id
LIMIT :limit

-- name: quarantined_ids
-- Logs to replay: a quarantined session or trace is no log of the source.
SELECT log_id
FROM assay.quarantine
WHERE deployment = :deployment AND stage <> 'unit'
  AND (CAST(:run_id AS uuid) IS NULL OR run_id = CAST(:run_id AS uuid))
ORDER BY log_ts NULLS LAST, log_id

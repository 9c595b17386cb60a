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

-- name: quarantine_counts
-- How many quarantined logs each reason (expectation, or stage when none) accounts for, over
-- every row the filters select, not only the rows listed.
SELECT coalesce(reason, stage) AS reason, count(*) AS n, sum(count(*)) OVER () AS total_rows
FROM (
    SELECT q.stage, e.reason
    FROM assay.quarantine q
    LEFT JOIN LATERAL unnest(q.expectations) AS e(reason) ON true
    WHERE (CAST(:deployment AS text) IS NULL OR q.deployment = :deployment)
      AND (CAST(:run_id AS uuid) IS NULL OR q.run_id = CAST(:run_id AS uuid))
) x
GROUP BY 1
ORDER BY n DESC, reason

-- name: quarantine_total
SELECT count(*) FROM assay.quarantine
WHERE (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
  AND (CAST(:run_id AS uuid) IS NULL OR run_id = CAST(:run_id AS uuid))

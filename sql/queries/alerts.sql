-- name: run_scores
SELECT {segment} AS segment, status, score, passed, weight
FROM assay.scores
WHERE run_id = CAST(:run_id AS uuid) AND evaluator = :evaluator

-- name: get_alert
SELECT status, opened_at, last_notified_at
FROM assay.alerts
WHERE deployment = :deployment AND evaluator = :evaluator AND metric = :metric
  AND segment = :segment
FOR UPDATE

-- name: open_alert
INSERT INTO assay.alerts (deployment, evaluator, metric, segment, status, rule, value, low, high,
                          n, opened_at, last_notified_at, run_id, opened_value, opened_n)
VALUES (:deployment, :evaluator, :metric, :segment, 'open', CAST(:rule AS jsonb), :value, :low,
        :high, :n, :now, :now, CAST(:run_id AS uuid), :value, :n)
ON CONFLICT (deployment, evaluator, metric, segment) DO UPDATE
SET status = 'open', rule = EXCLUDED.rule, value = EXCLUDED.value, low = EXCLUDED.low,
    high = EXCLUDED.high, n = EXCLUDED.n, opened_at = EXCLUDED.opened_at,
    opened_value = EXCLUDED.opened_value, opened_n = EXCLUDED.opened_n,
    last_notified_at = EXCLUDED.last_notified_at, resolved_at = NULL, run_id = EXCLUDED.run_id

-- name: update_alert
UPDATE assay.alerts
SET value = :value, low = :low, high = :high, n = :n, rule = CAST(:rule AS jsonb),
    run_id = CAST(:run_id AS uuid)
WHERE deployment = :deployment AND evaluator = :evaluator AND metric = :metric
  AND segment = :segment

-- name: mark_notified
UPDATE assay.alerts SET last_notified_at = :now
WHERE deployment = :deployment AND evaluator = :evaluator AND metric = :metric
  AND segment = :segment

-- name: resolve_alert
UPDATE assay.alerts
SET status = 'resolved', resolved_at = :now, value = :value, low = :low, high = :high, n = :n,
    run_id = CAST(:run_id AS uuid)
WHERE deployment = :deployment AND evaluator = :evaluator AND metric = :metric
  AND segment = :segment

-- name: open_alerts
SELECT evaluator, metric, segment, value, low, high, n, opened_at, rule, opened_value, opened_n
FROM assay.alerts
WHERE deployment = :deployment AND status = 'open'
ORDER BY opened_at

-- name: previous_results
-- Per-evaluator pass rates of the deployment's previous completed run, for deltas.
SELECT s.evaluator,
       count(*) FILTER (WHERE s.status = 'ok') AS ok,
       count(*) FILTER (WHERE s.status = 'ok' AND s.passed) AS passed
FROM assay.scores s
WHERE s.run_id = (
    SELECT run_id FROM assay.eval_runs
    WHERE deployment = :deployment AND status = 'completed' AND run_id <> CAST(:run_id AS uuid)
      AND scored > 0
    ORDER BY started_at DESC LIMIT 1)
GROUP BY s.evaluator

-- name: failing_examples
SELECT log_id, unit_kind, score, reason
FROM assay.scores
WHERE run_id = CAST(:run_id AS uuid) AND evaluator = :evaluator AND status = 'ok' AND NOT passed
  AND {segment} = :segment
ORDER BY score NULLS LAST, log_id
LIMIT 3

-- name: insert_outbox
INSERT INTO assay.outbox (id, deployment, kind, channel, payload, run_id)
VALUES (:id, :deployment, :kind, :channel, CAST(:payload AS jsonb), CAST(:run_id AS uuid))
ON CONFLICT (id) DO NOTHING

-- name: next_pending
SELECT id, deployment, kind, channel, payload, attempts
FROM assay.outbox
WHERE status = 'pending'
ORDER BY seq
LIMIT 1
FOR UPDATE SKIP LOCKED

-- name: mark_sent
UPDATE assay.outbox SET status = 'sent', sent_at = now(), attempts = attempts + 1,
       last_error = NULL
WHERE id = :id

-- name: mark_failed
UPDATE assay.outbox SET attempts = attempts + 1, last_error = :error WHERE id = :id

-- name: digest_runs
SELECT count(*) AS runs, min(window_start) AS window_start, max(window_end) AS window_end,
       coalesce(sum(pulled), 0) AS pulled, coalesce(sum(quarantined), 0) AS quarantined,
       coalesce(sum(scored), 0) AS scored
FROM assay.eval_runs
WHERE deployment = :deployment AND started_at >= :since

-- name: digest_results
SELECT evaluator,
       count(*) FILTER (WHERE status = 'ok') AS ok,
       count(*) FILTER (WHERE status = 'ok' AND passed) AS passed,
       count(*) FILTER (WHERE status = 'error') AS errors,
       count(*) FILTER (WHERE status = 'skipped') AS skipped,
       coalesce(sum(cost_usd), 0) AS cost_usd
FROM assay.scores
WHERE deployment = :deployment AND created_at >= :since AND created_at < :until
GROUP BY evaluator
ORDER BY evaluator

-- name: count_pending
SELECT count(*) FROM assay.outbox WHERE status = 'pending'

-- name: pending_messages
-- What waits in the outbox, oldest first (`assay outbox`).
SELECT id, deployment, kind, channel, payload ->> 'text' AS text, attempts, last_error, created_at
FROM assay.outbox
WHERE status = 'pending' AND (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
ORDER BY seq
LIMIT :limit

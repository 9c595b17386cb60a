-- name: try_lock_deployment
SELECT pg_try_advisory_lock(hashtext('assay.run'), hashtext(:deployment))

-- name: unlock_deployment
SELECT pg_advisory_unlock(hashtext('assay.run'), hashtext(:deployment))

-- name: abandon_stale_runs
UPDATE assay.eval_runs
SET status = 'failed', finished_at = now(),
    error = 'abandoned: the process running it stopped before it finished'
WHERE deployment = :deployment AND status = 'running'

-- name: get_watermark
SELECT ts, log_id FROM assay.watermarks WHERE deployment = :deployment

-- name: insert_run
INSERT INTO assay.eval_runs (run_id, deployment, kind, status, window_start, window_end, flow_run_id)
VALUES (:run_id, :deployment, :kind, 'running', :window_start, :window_end, :flow_run_id)

-- name: finish_run
UPDATE assay.eval_runs
SET status = :status, finished_at = now(), error = :error,
    details = details || CAST(:details AS jsonb)
WHERE run_id = :run_id
RETURNING run_id, deployment, kind, status, window_start, window_end, started_at, finished_at,
          pulled, normalized, quarantined, scored, errors, skipped, error, details

-- name: evaluator_results
SELECT evaluator,
       evaluator_version,
       count(*) AS n,
       count(*) FILTER (WHERE status = 'ok') AS ok,
       count(*) FILTER (WHERE status = 'ok' AND passed) AS passed,
       count(*) FILTER (WHERE status = 'error') AS errors,
       count(*) FILTER (WHERE status = 'skipped') AS skipped,
       avg(score) FILTER (WHERE status = 'ok') AS mean_score,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       count(*) FILTER (WHERE cost_usd IS NULL) AS unknown_cost,
       string_agg(DISTINCT judge_model, ', ') AS judge_models
FROM assay.scores
WHERE run_id = :run_id
GROUP BY evaluator, evaluator_version
ORDER BY evaluator

-- name: try_lock_deployment
SELECT pg_try_advisory_lock(hashtext('assay.run'), hashtext(:deployment))

-- name: unlock_deployment
SELECT pg_advisory_unlock(hashtext('assay.run'), hashtext(:deployment))

-- name: abandon_stale_runs
-- Hourly runs hold the deployment lock, so any other one still 'running' has died.
UPDATE assay.eval_runs
SET status = 'failed', finished_at = now(),
    error = 'abandoned: the process running it stopped before it finished'
WHERE deployment = :deployment AND status = 'running' AND kind <> 'backfill'

-- name: unrefreshed_since
-- Hourly runs that died after writing pages but before refreshing their rollups.
SELECT min(window_start) FROM assay.eval_runs
WHERE deployment = :deployment AND kind IN ('scheduled', 'manual') AND status = 'failed'
  AND error LIKE 'abandoned:%'
  AND started_at > coalesce(
      (SELECT max(started_at) FROM assay.eval_runs
       WHERE deployment = :deployment AND kind IN ('scheduled', 'manual') AND status = 'completed'),
      '-infinity')

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

-- name: insert_backfill_run
INSERT INTO assay.eval_runs (run_id, deployment, kind, status, window_start, window_end,
                             flow_run_id, parent_run_id, evaluators)
VALUES (:run_id, :deployment, 'backfill', 'running', :window_start, :window_end, :flow_run_id,
        :parent_run_id, :evaluators)

-- name: hold_run_alive
-- Held (session level) for as long as a backfill run's process lives.
SELECT pg_advisory_lock(hashtext('assay.backfill'), hashtext(:run_id))

-- name: release_run_alive
SELECT pg_advisory_unlock(hashtext('assay.backfill'), hashtext(:run_id))

-- name: abandon_dead_backfills
-- Backfill runs may overlap, so no deployment lock: a run is dead when nobody holds its lock.
UPDATE assay.eval_runs r
SET status = 'failed', finished_at = now(),
    error = 'abandoned: the process running it stopped before it finished'
WHERE r.deployment = :deployment AND r.kind = 'backfill' AND r.status = 'running'
  AND NOT EXISTS (
      SELECT 1 FROM pg_locks l
      WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
        AND CAST(l.classid AS bigint) = CAST(hashtext('assay.backfill') AS bigint) & 4294967295
        AND CAST(l.objid AS bigint) = CAST(hashtext(r.run_id::text) AS bigint) & 4294967295)

-- name: sum_children
-- A backfill parent's counters are its chunks' sums.
UPDATE assay.eval_runs p
SET pulled = c.pulled, normalized = c.normalized, quarantined = c.quarantined,
    scored = c.scored, errors = c.errors, skipped = c.skipped
FROM (SELECT coalesce(sum(pulled), 0) AS pulled, coalesce(sum(normalized), 0) AS normalized,
             coalesce(sum(quarantined), 0) AS quarantined, coalesce(sum(scored), 0) AS scored,
             coalesce(sum(errors), 0) AS errors, coalesce(sum(skipped), 0) AS skipped
      FROM assay.eval_runs WHERE parent_run_id = :run_id) c
WHERE p.run_id = :run_id

-- name: holds_advisory_locks
-- Whether this session still holds any advisory lock (a terminated session holds none).
SELECT EXISTS (
    SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
)

-- name: previous_window
-- The window of the deployment's last completed scheduled or manual run before this one.
SELECT window_start, window_end, pulled FROM assay.eval_runs
WHERE deployment = :deployment AND kind IN ('scheduled', 'manual') AND status = 'completed'
  AND run_id <> CAST(:run_id AS uuid)
ORDER BY started_at DESC LIMIT 1

-- name: mark_stopped
-- A process told to stop that could not finish its run normally: its deployment's running
-- (non-backfill) run is its own (the deployment lock), and is recorded as failed.
UPDATE assay.eval_runs
SET status = 'failed', finished_at = now(),
    error = 'stopped: the process was told to stop (SIGTERM or SIGINT) and ended the run'
WHERE deployment = :deployment AND status = 'running' AND kind <> 'backfill'

-- name: children_unscored
-- What a backfill's chunks left unscored (budget), per evaluator: the parent reports the sum.
SELECT e.key AS evaluator, sum(s.value::bigint)::bigint AS unscored
FROM assay.eval_runs r,
     jsonb_each(coalesce(r.details -> 'sampling' -> 'unscored', '{}'::jsonb)) AS e,
     jsonb_each_text(e.value) AS s
WHERE r.parent_run_id = :run_id
GROUP BY e.key
ORDER BY e.key

-- name: failed_run_since
-- The run a failed `assay run` recorded (the newest of the deployment started since), so the
-- one error line can name it.
SELECT run_id::text AS run_id FROM assay.eval_runs
WHERE deployment = :deployment AND started_at >= :since AND status = 'failed'
ORDER BY started_at DESC LIMIT 1

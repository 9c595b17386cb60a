-- name: ensure_run
INSERT INTO assay.run_spend (run_id, deployment) VALUES (CAST(:run_id AS uuid), :deployment)
ON CONFLICT (run_id) DO NOTHING

-- name: settle_day
UPDATE assay.spend
SET reserved_usd = greatest(reserved_usd - :reserved, 0), spent_usd = spent_usd + :actual
WHERE deployment = :deployment AND day = :day

-- name: settle_run
UPDATE assay.run_spend
SET reserved_usd = greatest(reserved_usd - :reserved, 0), spent_usd = spent_usd + :actual
WHERE run_id = CAST(:run_id AS uuid)

-- name: run_spend
SELECT spent_usd, reserved_usd, calls, refused FROM assay.run_spend
WHERE run_id = CAST(:run_id AS uuid)

-- name: day_spend
SELECT spent_usd, reserved_usd, calls FROM assay.spend
WHERE deployment = :deployment AND day = :day

-- name: known_verdicts
SELECT DISTINCT ON (evaluator, content_hash)
       evaluator, content_hash, log_id, score, passed, label, reason, judge_model
FROM assay.scores
WHERE deployment = :deployment AND evaluator = :evaluator
  AND evaluator_version = :evaluator_version AND status = 'ok'
  AND content_hash = ANY(:hashes)
ORDER BY evaluator, content_hash, created_at

-- name: known_verdicts_shared
-- Checks share verdicts across experiments: any experiment's judgement of the same content by
-- the same evaluator version (the predicate matches the partial index scores_experiment_content).
SELECT DISTINCT ON (evaluator, content_hash)
       evaluator, content_hash, log_id, deployment, score, passed, label, reason, judge_model
FROM assay.scores
WHERE starts_with(deployment, 'experiment-') AND evaluator = :evaluator
  AND evaluator_version = :evaluator_version AND status = 'ok'
  AND content_hash = ANY(:hashes) AND content_hash IS NOT NULL
ORDER BY evaluator, content_hash, created_at

-- name: reserve_spend
SELECT assay.reserve_spend(%(run_id)s, %(deployment)s, %(day)s, %(amount)s, %(max_calls)s,
                           %(max_run)s, %(max_day)s)

-- name: release_dead_reservations
-- Reservations of runs that ended without settling them (killed mid-call) are released, so a
-- dead run's worst cases stop counting against the day's cap. Its calls that did complete were
-- settled as they completed.
WITH dead AS (
    SELECT rs.run_id, rs.reserved_usd AS amount,
           CAST(timezone('UTC', r.started_at) AS date) AS day
    FROM assay.run_spend rs JOIN assay.eval_runs r ON r.run_id = rs.run_id
    WHERE rs.deployment = :deployment AND rs.reserved_usd > 0 AND r.status <> 'running'
    FOR UPDATE OF rs
), cleared AS (
    UPDATE assay.run_spend rs SET reserved_usd = 0
    FROM dead WHERE rs.run_id = dead.run_id
    RETURNING dead.amount, dead.day
)
UPDATE assay.spend s SET reserved_usd = greatest(s.reserved_usd - x.amount, 0)
FROM (SELECT day, sum(amount) AS amount FROM cleared GROUP BY day) x
WHERE s.deployment = :deployment AND s.day = x.day

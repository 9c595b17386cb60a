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
SELECT assay.try_reserve_spend(%(run_id)s, %(deployment)s, %(day)s, %(amount)s, %(max_calls)s,
                               %(max_run)s, %(max_day)s, %(count_refusal)s)

-- name: settle_call
SELECT assay.settle_call(%(run_id)s, %(deployment)s, %(day)s, %(reserved)s, %(actual)s)

-- name: store_settled_run
-- Calls settled as they returned, whose scores this page stores: no longer pending.
UPDATE assay.run_spend SET pending_usd = greatest(pending_usd - :actual, 0)
WHERE run_id = CAST(:run_id AS uuid)

-- name: store_settled_day
UPDATE assay.spend SET pending_usd = greatest(pending_usd - :actual, 0)
WHERE deployment = :deployment AND day = :day

-- name: unstore_settled_run
-- Calls settled as they returned whose scores were never stored (the page failed): out of the
-- spend again, so the ledger stays the stored scores' cost (the rerun judges and pays again).
UPDATE assay.run_spend
SET spent_usd = greatest(spent_usd - :actual, 0), pending_usd = greatest(pending_usd - :actual, 0)
WHERE run_id = CAST(:run_id AS uuid)

-- name: unstore_settled_day
UPDATE assay.spend
SET spent_usd = greatest(spent_usd - :actual, 0), pending_usd = greatest(pending_usd - :actual, 0)
WHERE deployment = :deployment AND day = :day

-- name: release_dead_reservations
-- Runs that ended without settling (killed mid-call) or without storing what they settled
-- (killed between a call and its page's commit): their reservations are released and their
-- pending spend taken out again, so a dead run's worst cases stop counting against the day's
-- cap and the ledger is again the stored scores' cost (the next run judges those logs again).
WITH dead AS (
    SELECT rs.run_id, rs.reserved_usd AS amount, rs.pending_usd AS pending,
           CAST(timezone('UTC', r.started_at) AS date) AS day
    FROM assay.run_spend rs JOIN assay.eval_runs r ON r.run_id = rs.run_id
    WHERE rs.deployment = :deployment AND (rs.reserved_usd > 0 OR rs.pending_usd > 0)
      AND r.status <> 'running'
    FOR UPDATE OF rs
), cleared AS (
    UPDATE assay.run_spend rs
    SET reserved_usd = 0, pending_usd = 0,
        spent_usd = greatest(rs.spent_usd - dead.pending, 0)
    FROM dead WHERE rs.run_id = dead.run_id
    RETURNING dead.amount, dead.pending, dead.day
)
UPDATE assay.spend s
SET reserved_usd = greatest(s.reserved_usd - x.amount, 0),
    spent_usd = greatest(s.spent_usd - x.pending, 0),
    pending_usd = greatest(s.pending_usd - x.pending, 0)
FROM (SELECT day, sum(amount) AS amount, sum(pending) AS pending FROM cleared GROUP BY day) x
WHERE s.deployment = :deployment AND s.day = x.day

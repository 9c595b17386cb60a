-- name: create_staging
CREATE TEMP TABLE IF NOT EXISTS assay_scores_staging
    (LIKE assay.scores INCLUDING DEFAULTS) ON COMMIT DELETE ROWS

-- name: merge_staging
-- A key already scored stays as it is, unless it was an `error`: a new verdict replaces it
-- (a backfill re-judges errors), so an error never blocks a later real score.
INSERT INTO assay.scores AS s SELECT * FROM assay_scores_staging
ON CONFLICT (deployment, unit_kind, log_id, evaluator, evaluator_version) DO UPDATE
SET judge_model = EXCLUDED.judge_model, status = EXCLUDED.status, score = EXCLUDED.score,
    passed = EXCLUDED.passed, label = EXCLUDED.label, reason = EXCLUDED.reason,
    cost_usd = s.cost_usd + EXCLUDED.cost_usd,  -- both calls were paid for
    tokens = EXCLUDED.tokens, latency_ms = EXCLUDED.latency_ms,
    weight = EXCLUDED.weight, run_id = EXCLUDED.run_id, content_hash = EXCLUDED.content_hash,
    created_at = now()
WHERE s.status = 'error' AND EXCLUDED.status <> 'error'

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
-- `counted_from` is where the first moving run started reading: set once, never moved.
INSERT INTO assay.watermarks (deployment, ts, log_id, run_id, updated_at, counted_from)
VALUES (:deployment, :ts, :log_id, :run_id, now(), :counted_from)
ON CONFLICT (deployment) DO UPDATE
SET ts = EXCLUDED.ts, log_id = EXCLUDED.log_id, run_id = EXCLUDED.run_id, updated_at = now(),
    counted_from = coalesce(assay.watermarks.counted_from, EXCLUDED.counted_from)

-- name: uncounted_by_watermark
-- Of a moving run's page, the logs a backfill has not counted already.
SELECT log_id FROM unnest(CAST(:log_ids AS text[])) AS given(log_id)
WHERE NOT EXISTS (
    SELECT 1 FROM assay.usage_counted c WHERE c.deployment = :deployment AND c.log_id = given.log_id
)

-- name: lock_watermark
SELECT 1 FROM assay.watermarks WHERE deployment = :deployment FOR SHARE

-- name: count_once
-- Of a backfill's page, the logs counted by nobody yet, recorded as counted now: not in the
-- moving runs' range (from `counted_from` up to the watermark's time, inclusive, so a log at the
-- watermark's own time that the next hourly run still reads is left to it) and not counted by
-- another backfill.
INSERT INTO assay.usage_counted (deployment, log_id)
SELECT :deployment, given.log_id
FROM unnest(CAST(:log_ids AS text[]), CAST(:log_ts AS timestamptz[])) AS given(log_id, log_ts)
WHERE NOT EXISTS (
    SELECT 1 FROM assay.watermarks w
    WHERE w.deployment = :deployment AND w.counted_from IS NOT NULL
      AND given.log_ts >= w.counted_from AND given.log_ts <= w.ts
)
ON CONFLICT DO NOTHING
RETURNING log_id

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
-- "Already scored" means a verdict or a deliberate skip; `error` rows are judged again.
SELECT log_id FROM assay.scores
WHERE deployment = :deployment AND evaluator = :evaluator AND evaluator_version = :version
  AND log_id = ANY(:log_ids) AND status IN ('ok', 'skipped')

-- name: scored_times
-- When each of these ids was scored (a log id seen again with another time is a duplicate).
SELECT log_id, min(log_ts) AS log_ts FROM assay.scores
WHERE deployment = :deployment AND log_id = ANY(:log_ids)
GROUP BY log_id

-- name: quarantined_among
SELECT log_id FROM assay.quarantine WHERE deployment = :deployment AND log_id = ANY(:log_ids)

-- name: claim_score_keys
-- Claim these logs for one judge (evaluator and version) before calling it: returns the ids
-- this run now holds. A claim held by another run that is still running, and younger than the
-- timeout, is left alone; a claim of a dead or finished run is taken over.
INSERT INTO assay.judge_claims AS c (deployment, log_id, evaluator, evaluator_version, run_id)
SELECT :deployment, ids.log_id, :evaluator, :version, CAST(:run_id AS uuid)
FROM unnest(CAST(:log_ids AS text[])) AS ids (log_id)
ON CONFLICT (deployment, log_id, evaluator, evaluator_version) DO UPDATE
SET run_id = EXCLUDED.run_id, claimed_at = now()
WHERE c.run_id = EXCLUDED.run_id
   OR c.claimed_at < now() - make_interval(secs => :timeout_s)
   OR NOT EXISTS (SELECT 1 FROM assay.eval_runs r WHERE r.run_id = c.run_id AND r.status = 'running')
RETURNING c.log_id

-- name: release_claims
-- A run's claims end when its page commits (the scores now say the logs are judged) or fails.
DELETE FROM assay.judge_claims WHERE run_id = CAST(:run_id AS uuid)

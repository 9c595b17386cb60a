-- name: evaluated_units
-- Units of a deployment already evaluated: when their last item was, how many items, and the
-- revision of their evaluation.
SELECT unit_id, last_ts, items, late_items, revision
FROM assay.unit_evaluations
WHERE deployment = :deployment AND unit_kind = :unit_kind AND unit_id = ANY(:unit_ids)

-- name: record_unit
-- Evaluated once: a rerun or a concurrent run that finds it here evaluates nothing again. A
-- later revision (rescore_late) replaces the record; the same revision never does.
INSERT INTO assay.unit_evaluations AS u (deployment, unit_kind, unit_id, last_ts, items, run_id,
                                         status, reason, revision, cost_usd, tokens)
VALUES (:deployment, :unit_kind, :unit_id, :last_ts, :items, CAST(:run_id AS uuid), :status,
        :reason, :revision, :cost_usd, :tokens)
ON CONFLICT (deployment, unit_kind, unit_id) DO UPDATE
SET last_ts = EXCLUDED.last_ts, items = EXCLUDED.items, run_id = EXCLUDED.run_id,
    cost_usd = EXCLUDED.cost_usd, tokens = EXCLUDED.tokens,
    status = EXCLUDED.status, reason = EXCLUDED.reason, revision = EXCLUDED.revision,
    evaluated_at = now(), late_items = 0, late_seen_at = NULL
WHERE u.revision < EXCLUDED.revision

-- name: archive_unit_scores
-- Before a unit's next revision is written: its current scores move to the revisions table
-- (their cost stays on record there: the ledger equals scores plus revisions).
WITH replaced AS (
    DELETE FROM assay.scores
    WHERE deployment = :deployment AND unit_kind = :unit_kind AND log_id = ANY(:unit_ids)
    RETURNING *
)
INSERT INTO assay.unit_score_revisions SELECT * FROM replaced

-- name: record_late
-- Items that arrived after their unit was evaluated: counted, not scored.
UPDATE assay.unit_evaluations
SET late_items = :late_items, late_seen_at = now()
WHERE deployment = :deployment AND unit_kind = :unit_kind AND unit_id = :unit_id
  AND late_items < :late_items

-- name: unit_scores_present
-- What these units are already scored by (a backfill adds only the rest; an error is retried).
SELECT log_id, evaluator, evaluator_version
FROM assay.scores
WHERE deployment = :deployment AND unit_kind = :unit_kind AND log_id = ANY(:unit_ids)
  AND status <> 'error'

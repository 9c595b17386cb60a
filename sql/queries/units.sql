-- name: evaluated_units
-- Units of a deployment already evaluated: when their last item was, and how many items.
SELECT unit_id, last_ts, items, late_items
FROM assay.unit_evaluations
WHERE deployment = :deployment AND unit_kind = :unit_kind AND unit_id = ANY(:unit_ids)

-- name: record_unit
-- Evaluated once: a rerun or a concurrent run that finds it here evaluates nothing again.
INSERT INTO assay.unit_evaluations (deployment, unit_kind, unit_id, last_ts, items, run_id,
                                    status, reason)
VALUES (:deployment, :unit_kind, :unit_id, :last_ts, :items, CAST(:run_id AS uuid), :status,
        :reason)
ON CONFLICT (deployment, unit_kind, unit_id) DO NOTHING

-- name: record_late
-- Items that arrived after their unit was evaluated: counted, not scored.
UPDATE assay.unit_evaluations
SET late_items = :late_items, late_seen_at = now()
WHERE deployment = :deployment AND unit_kind = :unit_kind AND unit_id = :unit_id
  AND late_items < :late_items

-- name: supersede_label
-- A relabel by the same annotator retires their earlier label (kept as history).
UPDATE assay.labels SET superseded_at = now()
WHERE coalesce(deployment, '') = coalesce(CAST(:deployment AS text), '')
  AND coalesce(log_id, '') = coalesce(CAST(:log_id AS text), '')
  AND coalesce(dataset, '') = coalesce(CAST(:dataset AS text), '')
  AND coalesce(item_id, '') = coalesce(CAST(:item_id AS text), '')
  AND criterion = :criterion AND annotator = :annotator AND superseded_at IS NULL

-- name: insert_label
INSERT INTO assay.labels (deployment, log_id, dataset, item_id, criterion, passed, score, label,
                          note, annotator, source, queue_id, created_at)
VALUES (:deployment, :log_id, :dataset, :item_id, :criterion, :passed, :score, :label, :note,
        :annotator, :source, :queue_id, coalesce(CAST(:created_at AS timestamptz), now()))
RETURNING label_id

-- name: stage_labels
-- An import's batch, COPYed here first (dropped with the transaction, emptied per batch).
CREATE TEMP TABLE IF NOT EXISTS labels_incoming (
    line integer NOT NULL, round integer NOT NULL, deployment text, log_id text, dataset text,
    item_id text, criterion text NOT NULL, passed boolean, score double precision, label text,
    note text, annotator text NOT NULL, created_at timestamptz
) ON COMMIT DROP;
TRUNCATE labels_incoming

-- name: unknown_subjects
-- Staged rows naming a log the deployment has no scores for, a criterion it was not scored by,
-- or a dataset item that does not exist (or was retired).
SELECT i.line, i.deployment, i.log_id, i.dataset, i.item_id, i.criterion, k.evaluators
FROM labels_incoming i
LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT s.evaluator) AS evaluators FROM assay.scores s
    WHERE s.deployment = i.deployment AND s.log_id = i.log_id
      AND s.unit_kind IN ('log', 'session', 'trace')  -- every kind: the primary key's order
    HAVING count(*) > 0
) k ON i.log_id IS NOT NULL
WHERE (i.log_id IS NOT NULL
       AND (k.evaluators IS NULL
            OR NOT (i.criterion = 'user_feedback' OR i.criterion = ANY(k.evaluators))))
   OR (i.item_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM assay.dataset_items d
        WHERE d.dataset = i.dataset AND d.item_id = i.item_id AND d.retired_at IS NULL))

-- name: drop_staged_lines
DELETE FROM labels_incoming WHERE line = ANY(:lines)

-- name: supersede_staged
-- The staged round's rows retire the same annotators' current labels of the same things (the
-- join runs on the labels_current index's expressions).
UPDATE assay.labels l SET superseded_at = now()
FROM labels_incoming r
WHERE r.round = :round
  AND coalesce(l.deployment, '') = coalesce(r.deployment, '')
  AND coalesce(l.log_id, '') = coalesce(r.log_id, '')
  AND coalesce(l.dataset, '') = coalesce(r.dataset, '')
  AND coalesce(l.item_id, '') = coalesce(r.item_id, '')
  AND l.criterion = r.criterion AND l.annotator = r.annotator AND l.superseded_at IS NULL

-- name: insert_staged
INSERT INTO assay.labels (deployment, log_id, dataset, item_id, criterion, passed, score, label,
                          note, annotator, source, created_at)
SELECT deployment, log_id, dataset, item_id, criterion, passed, score, label, note, annotator,
       :source, coalesce(created_at, now())
FROM labels_incoming WHERE round = :round ORDER BY line

-- name: feedback_labels
-- End users' thumbs become `user_feedback` labels as their logs are scored; seeing them again
-- (a rerun, a backfill) adds nothing.
INSERT INTO assay.labels (deployment, log_id, criterion, passed, label, annotator, source)
SELECT :deployment, f.log_id, 'user_feedback',
       CASE f.feedback WHEN 'positive' THEN true WHEN 'negative' THEN false END,
       f.feedback, f.annotator, 'user_feedback'
FROM unnest(CAST(:log_ids AS text[]), CAST(:feedback AS text[]), CAST(:annotators AS text[]))
     AS f(log_id, feedback, annotator)
ON CONFLICT DO NOTHING

-- name: label_pairs
SELECT deployment, evaluator, evaluator_version, log_id, judged_at, judge_passed, judge_score,
       human_passed, human_score, weight
FROM assay_analytics.label_pairs
WHERE (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
  AND (CAST(:evaluator AS text) IS NULL OR evaluator = :evaluator)

-- name: annotator_pairs
-- Logs two or more people labelled (per criterion): the first two annotators' verdicts.
SELECT deployment, criterion, log_id,
       (array_agg(passed ORDER BY created_at))[1] AS first,
       (array_agg(passed ORDER BY created_at))[2] AS second
FROM assay.labels
WHERE superseded_at IS NULL AND source <> 'user_feedback' AND passed IS NOT NULL
  AND deployment IS NOT NULL
  AND (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
  AND (CAST(:evaluator AS text) IS NULL OR criterion = :evaluator)
GROUP BY deployment, criterion, log_id
HAVING count(DISTINCT annotator) >= 2

-- name: judged_population
-- The judged logs of one evaluator version in a window: what a queue is drawn from.
SELECT log_id, passed, score, reason, evaluator_version, model, provider, prompt_slug, topic,
       customer_id, environment
FROM assay.scores
WHERE deployment = :deployment AND evaluator = :evaluator AND status = 'ok'
  AND passed IS NOT NULL AND log_ts >= :since AND log_ts < :until

-- name: newest_version
SELECT evaluator_version FROM assay.scores
WHERE deployment = :deployment AND evaluator = :evaluator AND status = 'ok'
  AND log_ts >= :since AND log_ts < :until
ORDER BY created_at DESC LIMIT 1

-- name: create_queue
INSERT INTO assay.annotation_queues (name, deployment, evaluator, evaluator_version, since, until,
                                     design)
VALUES (:name, :deployment, :evaluator, :evaluator_version, :since, :until,
        CAST(:design AS jsonb))
RETURNING queue_id

-- name: add_queue_item
INSERT INTO assay.queue_items (queue_id, log_id, position, stratum, inclusion_probability,
                               judge_passed, judge_score, judge_reason, shown)
VALUES (:queue_id, :log_id, :position, :stratum, :inclusion_probability, :judge_passed,
        :judge_score, :judge_reason, CAST(:shown AS jsonb))

-- name: get_queue
SELECT q.queue_id, q.name, q.deployment, q.evaluator, q.evaluator_version, q.since, q.until,
       q.design, q.created_at,
       (SELECT count(*) FROM assay.queue_items i WHERE i.queue_id = q.queue_id) AS size,
       (SELECT count(*) FROM assay.queue_items i
        WHERE i.queue_id = q.queue_id AND i.labelled_at IS NOT NULL) AS labelled
FROM assay.annotation_queues q
WHERE q.name = :name

-- name: list_queues
SELECT q.name, q.deployment, q.evaluator, q.created_at,
       (SELECT count(*) FROM assay.queue_items i WHERE i.queue_id = q.queue_id) AS size,
       (SELECT count(*) FROM assay.queue_items i
        WHERE i.queue_id = q.queue_id AND i.labelled_at IS NOT NULL) AS labelled
FROM assay.annotation_queues q
ORDER BY q.created_at DESC

-- name: claim_next
-- The annotator's next item: their own unexpired claim first (a reloaded page), else the first
-- item nobody holds (or whose holder's claim expired: a closed tab). SKIP LOCKED: two annotators
-- asking at once never get the same item. Nobody holds more than :max_claims live claims (run
-- under lock_annotator, so two tabs of one person cannot each take one).
UPDATE assay.queue_items
SET claimed_by = :annotator, claimed_until = now() + make_interval(secs => :claim_s)
WHERE (queue_id, log_id) = (
    SELECT queue_id, log_id FROM assay.queue_items
    WHERE queue_id = :queue_id AND labelled_at IS NULL AND NOT (:annotator = ANY(skipped_by))
      AND (claimed_by IS NULL OR claimed_until < now() OR claimed_by = :annotator)
      AND ((claimed_by = :annotator AND claimed_until >= now())
           OR (SELECT count(*) FROM assay.queue_items mine
               WHERE mine.queue_id = :queue_id AND mine.claimed_by = :annotator
                 AND mine.claimed_until >= now() AND mine.labelled_at IS NULL) < :max_claims)
    ORDER BY (claimed_by IS NOT DISTINCT FROM :annotator AND claimed_until >= now()) DESC,
             position
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING log_id, position, stratum, shown

-- name: renew_claim
UPDATE assay.queue_items SET claimed_until = now() + make_interval(secs => :claim_s)
WHERE queue_id = :queue_id AND log_id = :log_id AND claimed_by = :annotator
  AND labelled_at IS NULL AND claimed_until >= now()

-- name: finish_item
-- Only the holder of a live claim may answer: an expired claim someone else took is theirs now.
UPDATE assay.queue_items
SET labelled_at = now(), claimed_by = NULL, claimed_until = NULL
WHERE queue_id = :queue_id AND log_id = :log_id AND claimed_by = :annotator
  AND labelled_at IS NULL AND claimed_until >= now()
RETURNING judge_passed, judge_score, judge_reason

-- name: skip_item
UPDATE assay.queue_items
SET skipped_by = array_append(skipped_by, :annotator), claimed_by = NULL, claimed_until = NULL
WHERE queue_id = :queue_id AND log_id = :log_id AND claimed_by = :annotator
  AND labelled_at IS NULL

-- name: invite_annotator
-- A new link replaces the annotator's old one (a lost or leaked link is re-issued).
INSERT INTO assay.annotators (queue_id, annotator, token_sha256)
VALUES (:queue_id, :annotator, :token_sha256)
ON CONFLICT (queue_id, annotator) DO UPDATE
SET token_sha256 = excluded.token_sha256, invited_at = now(), revoked_at = NULL

-- name: revoke_annotator
UPDATE assay.annotators SET revoked_at = now()
WHERE queue_id = :queue_id AND annotator = :annotator AND revoked_at IS NULL

-- name: release_annotator_claims
UPDATE assay.queue_items SET claimed_by = NULL, claimed_until = NULL
WHERE queue_id = :queue_id AND claimed_by = :annotator AND labelled_at IS NULL

-- name: annotator_of_token
SELECT annotator FROM assay.annotators
WHERE queue_id = :queue_id AND token_sha256 = :token_sha256 AND revoked_at IS NULL

-- name: list_annotators
SELECT annotator, invited_at, revoked_at FROM assay.annotators
WHERE queue_id = :queue_id ORDER BY annotator

-- name: lock_annotator
-- One claim at a time per annotator: two tabs asking at once queue here instead of each
-- taking an item.
SELECT pg_advisory_xact_lock(CAST(:queue_id AS integer), hashtext(:annotator))

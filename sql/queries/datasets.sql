-- name: create_dataset
INSERT INTO assay.datasets (name, description) VALUES (:name, :description)
ON CONFLICT (name) DO NOTHING
RETURNING name

-- name: current_hashes
-- The current revision of each item of a dataset (to tell new, changed and unchanged items).
SELECT item_id, revision, content_hash FROM assay.dataset_items
WHERE dataset = :dataset AND retired_at IS NULL

-- name: retire_item
UPDATE assay.dataset_items SET retired_at = now()
WHERE dataset = :dataset AND item_id = :item_id AND retired_at IS NULL

-- name: insert_item
INSERT INTO assay.dataset_items (dataset, item_id, revision, input, context, expected, tags,
                                 metadata, source_deployment, source_log_id, content_hash)
VALUES (:dataset, :item_id, :revision, :input, CAST(:context AS jsonb), :expected, :tags,
        CAST(:metadata AS jsonb), :source_deployment, :source_log_id, :content_hash)

-- name: list_datasets
SELECT d.name, d.description, d.created_at,
       count(i.item_id) FILTER (WHERE i.retired_at IS NULL) AS items,
       count(i.item_id) FILTER (WHERE i.retired_at IS NULL AND i.expected IS NOT NULL)
           AS with_expected,
       max(i.created_at) AS changed_at
FROM assay.datasets d
LEFT JOIN assay.dataset_items i ON i.dataset = d.name
GROUP BY d.name, d.description, d.created_at
ORDER BY d.name

-- name: current_items
SELECT item_id, revision, input, context, expected, tags, metadata, source_deployment,
       source_log_id, content_hash, created_at
FROM assay.dataset_items
WHERE dataset = :dataset AND retired_at IS NULL
ORDER BY item_id

-- name: curation_candidates
-- Production logs to curate into a dataset: scored in the window, optionally those an
-- evaluator failed; newest first.
SELECT log_id FROM assay.scores
WHERE deployment = :deployment AND log_ts >= :since
  AND (CAST(:evaluator AS text) IS NULL OR evaluator = :evaluator)
  AND (NOT :failed OR (status = 'ok' AND NOT passed))
GROUP BY log_id
ORDER BY max(log_ts) DESC, log_id
LIMIT :limit

-- name: labelled_candidates
-- Logs people labelled for a criterion (their latest current label; not end-user feedback),
-- optionally only those people failed: hard cases worth keeping in a golden dataset.
SELECT log_id, passed, note, annotator FROM (
    SELECT DISTINCT ON (log_id) log_id, passed, note, annotator, created_at
    FROM assay.labels
    WHERE deployment = :deployment AND criterion = :criterion AND superseded_at IS NULL
      AND source <> 'user_feedback' AND created_at >= :since
    ORDER BY log_id, created_at DESC
) latest
WHERE NOT :failed OR passed IS FALSE
ORDER BY log_id
LIMIT :limit

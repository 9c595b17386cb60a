-- name: start_experiment
-- A rerun of the same experiment (same dataset content, target, config, tier, commit) reuses
-- its row and its scores.
INSERT INTO assay.experiments (experiment_id, name, dataset, dataset_digest, target, config,
                               tier, git_commit, git_branch, status, items, repeats, created_at)
VALUES (:experiment_id, :name, :dataset, :dataset_digest, :target, :config, :tier, :git_commit,
        :git_branch, 'running', :items, :repeats, :created_at)
ON CONFLICT (experiment_id) DO UPDATE SET status = 'running', finished_at = NULL
RETURNING created_at

-- name: finish_experiment
UPDATE assay.experiments
SET status = :status, gate_passed = :gate_passed, gate = CAST(:gate AS jsonb),
    totals = CAST(:totals AS jsonb), cost_usd = :cost_usd, run_id = CAST(:run_id AS uuid),
    finished_at = now()
WHERE experiment_id = :experiment_id

-- name: experiment_scores
-- Every score of an experiment, whichever of its runs wrote it; `cached` when its verdict was
-- reused from another experiment's judgement of the same content.
SELECT '' AS segment, log_id, evaluator, status, score, passed, weight, cost_usd,
       coalesce(reason LIKE 'cached from experiment-%' AND cost_usd = 0, false) AS cached
FROM assay.scores
WHERE deployment = :deployment

-- name: list_experiments
SELECT experiment_id, name, dataset, dataset_digest, target, config, tier, git_commit,
       git_branch, status, items, repeats, gate_passed, cost_usd, totals, created_at,
       finished_at
FROM assay.experiments
WHERE (CAST(:dataset AS text) IS NULL OR dataset = :dataset)
ORDER BY created_at DESC
LIMIT :limit

-- name: scored_items
-- Items an experiment has already scored (a rerun does not call the target for them again).
SELECT DISTINCT log_id FROM assay.scores WHERE deployment = :deployment

-- name: save_output
INSERT INTO assay.experiment_outputs (experiment_id, item_id, output, error, latency_ms,
                                      cost_usd, model, cached)
VALUES (:experiment_id, :item_id, :output, :error, :latency_ms, :cost_usd, :model, :cached)
ON CONFLICT (experiment_id, item_id) DO UPDATE
SET output = EXCLUDED.output, error = EXCLUDED.error, latency_ms = EXCLUDED.latency_ms,
    cost_usd = EXCLUDED.cost_usd, model = EXCLUDED.model, cached = EXCLUDED.cached

-- name: cached_outputs
-- Target answers already paid for, by content (target digest, item content, repeat).
SELECT cache_key, output, latency_ms, cost_usd, model
FROM assay.target_cache WHERE cache_key = ANY(:keys)

-- name: cache_output
INSERT INTO assay.target_cache (cache_key, target, output, latency_ms, cost_usd, model,
                                experiment_id)
VALUES (:cache_key, :target, :output, :latency_ms, :cost_usd, :model, :experiment_id)
ON CONFLICT (cache_key) DO NOTHING

-- name: item_verdicts
-- Per item and evaluator, the judged verdict of an experiment (for paired comparisons).
SELECT log_id AS item_id, evaluator, passed, score
FROM assay.scores
WHERE deployment = :deployment AND status = 'ok'

-- name: failing_items
-- The worst failing items of one evaluator in an experiment (JUnit failures, compare).
SELECT log_id AS item_id, score, reason
FROM assay.scores
WHERE deployment = :deployment AND evaluator = :evaluator AND status = 'ok' AND NOT passed
ORDER BY score, log_id
LIMIT :limit

-- name: get_experiment
SELECT experiment_id, name, dataset, dataset_digest, target, config, tier, git_commit,
       git_branch, status, items, repeats, gate_passed, cost_usd, totals, created_at,
       finished_at
FROM assay.experiments
WHERE experiment_id = :experiment_id

-- name: latest_on_branch
-- The newest completed experiment of a dataset on one of these branches (a CI baseline).
SELECT experiment_id FROM assay.experiments
WHERE dataset = :dataset AND status = 'completed' AND git_branch = ANY(:branches)
  AND experiment_id <> :exclude
ORDER BY created_at DESC LIMIT 1

-- name: item_outputs
SELECT o.item_id, o.output, o.error, i.input, i.expected
FROM assay.experiment_outputs o
JOIN assay.experiments e ON e.experiment_id = o.experiment_id
LEFT JOIN assay.dataset_items i
  ON i.dataset = e.dataset AND i.item_id = o.item_id AND i.retired_at IS NULL
WHERE o.experiment_id = :experiment_id AND o.item_id = ANY(:item_ids)

-- name: export_candidates
-- Per log of a window: which evaluators it passed and failed (judged scores only), in log
-- order. The caller keeps the logs that meet every condition and never one that failed pii
-- or secrets.
SELECT log_id,
       array_agg(evaluator) FILTER (WHERE status = 'ok' AND passed) AS passed,
       array_agg(evaluator) FILTER (WHERE status = 'ok' AND NOT passed) AS failed
FROM assay.scores
WHERE deployment = :deployment AND log_ts >= :since AND log_ts < :until
GROUP BY log_id
ORDER BY min(log_ts), log_id

-- name: target_spend
-- What an experiment's target answers cost (answers from the cache cost this one nothing).
SELECT coalesce(sum(cost_usd) FILTER (WHERE NOT cached AND error IS NULL), 0) AS usd,
       count(*) FILTER (WHERE cached) AS cached
FROM assay.experiment_outputs
WHERE experiment_id = :experiment_id

-- name: start_experiment
-- A rerun of the same experiment (same dataset content, target, config, tier, commit) reuses
-- its row and its scores.
INSERT INTO assay.experiments (experiment_id, name, dataset, dataset_digest, target, config,
                               tier, git_commit, git_branch, status, items, created_at)
VALUES (:experiment_id, :name, :dataset, :dataset_digest, :target, :config, :tier, :git_commit,
        :git_branch, 'running', :items, :created_at)
ON CONFLICT (experiment_id) DO UPDATE SET status = 'running', finished_at = NULL
RETURNING created_at

-- name: finish_experiment
UPDATE assay.experiments
SET status = :status, gate_passed = :gate_passed, gate = CAST(:gate AS jsonb),
    totals = CAST(:totals AS jsonb), cost_usd = :cost_usd, run_id = CAST(:run_id AS uuid),
    finished_at = now()
WHERE experiment_id = :experiment_id

-- name: experiment_scores
-- Every score of an experiment, whichever of its runs wrote it.
SELECT '' AS segment, evaluator, status, score, passed, weight, cost_usd
FROM assay.scores
WHERE deployment = :deployment

-- name: list_experiments
SELECT experiment_id, name, dataset, dataset_digest, target, config, tier, git_commit,
       git_branch, status, items, gate_passed, cost_usd, totals, created_at, finished_at
FROM assay.experiments
WHERE (CAST(:dataset AS text) IS NULL OR dataset = :dataset)
ORDER BY created_at DESC
LIMIT :limit

-- name: scored_items
-- Items an experiment has already scored (a rerun does not call the target for them again).
SELECT DISTINCT log_id FROM assay.scores WHERE deployment = :deployment

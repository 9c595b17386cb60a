-- Checks of a dataset are runs of their own kind; each is an experiment: which dataset (and its
-- content digest), which target, which config, what the gate decided. Its per-item scores are
-- ordinary scores under the deployment `experiment-<id>`, so a rerun of the same experiment
-- (after a crash) neither duplicates nor loses one.
ALTER TABLE assay.eval_runs DROP CONSTRAINT IF EXISTS eval_runs_kind_check;
ALTER TABLE assay.eval_runs ADD CONSTRAINT eval_runs_kind_check
    CHECK (kind IN ('scheduled', 'manual', 'backfill', 'replay', 'check'));

CREATE TABLE assay.experiments (
    experiment_id   text PRIMARY KEY CHECK (experiment_id ~ '^[0-9a-f]{12}$'),
    name            text NOT NULL,
    dataset         text NOT NULL REFERENCES assay.datasets (name) ON DELETE CASCADE,
    dataset_digest  text NOT NULL,
    target          text NOT NULL,
    config          text NOT NULL,   -- the job config's deployment (its evaluators and rules)
    tier            text NOT NULL CHECK (tier IN ('free', 'all')),
    git_commit      text,
    git_branch      text,
    status          text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    items           integer NOT NULL DEFAULT 0,
    gate_passed     boolean,
    gate            jsonb NOT NULL DEFAULT '[]'::jsonb,
    totals          jsonb NOT NULL DEFAULT '{}'::jsonb,
    cost_usd        double precision NOT NULL DEFAULT 0,
    run_id          uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX experiments_dataset ON assay.experiments (dataset, created_at);

-- Checks cost nothing twice. A target's answer is cached by content: the same target (a
-- callable's module source or a prompt file, by digest) on the same item content and repeat
-- answers from here at no cost. Judge verdicts are shared across experiments through the
-- scores themselves (same evaluator version, same content hash), found by the index below.
CREATE TABLE assay.target_cache (
    cache_key      text PRIMARY KEY,
    target         text NOT NULL,
    output         text,
    latency_ms     integer,
    cost_usd       double precision,
    model          text,
    experiment_id  text NOT NULL,   -- the experiment that paid for the answer
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX scores_experiment_content
    ON assay.scores (evaluator, evaluator_version, content_hash)
    WHERE content_hash IS NOT NULL AND status = 'ok' AND starts_with(deployment, 'experiment-');

-- `--repeat N` runs the target N times per item: repeat k of item i is logged as `i#k` (k > 1).
ALTER TABLE assay.experiments ADD COLUMN repeats integer NOT NULL DEFAULT 1
    CHECK (repeats BETWEEN 1 AND 100);
ALTER TABLE assay.experiment_outputs ADD COLUMN cached boolean NOT NULL DEFAULT false;

-- Labels: what a person (an annotator, or an end user through feedback) decided about one log or
-- one dataset item for one criterion (an evaluator's name, or `user_feedback`). Labels sit beside
-- scores and never change them. Several annotators may label the same thing; an annotator who
-- relabels retires their own earlier label (`superseded_at`), and the history stays.
CREATE TABLE assay.labels (
    label_id       bigserial PRIMARY KEY,
    deployment     text,
    log_id         text,
    dataset        text,
    item_id        text,
    criterion      text NOT NULL,
    passed         boolean,
    score          double precision CHECK (score BETWEEN 0 AND 1),
    label          text,
    note           text,
    annotator      text NOT NULL CHECK (length(annotator) BETWEEN 1 AND 200),
    source         text NOT NULL CHECK (source IN ('annotation', 'import', 'user_feedback')),
    queue_id       bigint,      -- the annotation queue it answered (its sampling weight)
    created_at     timestamptz NOT NULL DEFAULT now(),
    superseded_at  timestamptz,
    CHECK ((deployment IS NOT NULL AND log_id IS NOT NULL AND dataset IS NULL AND item_id IS NULL)
        OR (dataset IS NOT NULL AND item_id IS NOT NULL AND deployment IS NULL AND log_id IS NULL)),
    CHECK (passed IS NOT NULL OR score IS NOT NULL OR label IS NOT NULL)
);
-- One current label per subject, criterion and annotator (a rerun that sees the same end-user
-- feedback again adds nothing).
CREATE UNIQUE INDEX labels_current ON assay.labels
    (coalesce(deployment, ''), coalesce(log_id, ''), coalesce(dataset, ''), coalesce(item_id, ''),
     criterion, annotator)
    WHERE superseded_at IS NULL;
CREATE INDEX labels_log ON assay.labels (deployment, criterion, log_id) WHERE superseded_at IS NULL;

-- Annotation queues: a probability sample of judged logs, stratified by the judge's verdict
-- (and optionally a segment), each item with its inclusion probability, so agreement estimated
-- from the queue is unbiased for the population it was drawn from.
CREATE TABLE assay.annotation_queues (
    queue_id           bigserial PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    deployment         text NOT NULL,
    evaluator          text NOT NULL,
    evaluator_version  text NOT NULL,
    since              timestamptz NOT NULL,
    until              timestamptz NOT NULL,
    design             jsonb NOT NULL,   -- strata: population and sample sizes
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assay.queue_items (
    queue_id               bigint NOT NULL REFERENCES assay.annotation_queues ON DELETE CASCADE,
    log_id                 text NOT NULL,
    position               integer NOT NULL,
    stratum                text NOT NULL,
    inclusion_probability  double precision NOT NULL CHECK (inclusion_probability > 0
                                                            AND inclusion_probability <= 1),
    judge_passed           boolean,
    judge_score            double precision,
    judge_reason           text,
    shown                  jsonb NOT NULL,   -- prompt, context, response as the annotator sees them
    claimed_by             text,
    claimed_until          timestamptz,
    labelled_at            timestamptz,
    skipped_by             text[] NOT NULL DEFAULT '{}',  -- never offered to them again
    PRIMARY KEY (queue_id, log_id)
);
CREATE INDEX queue_items_order ON assay.queue_items (queue_id, position);

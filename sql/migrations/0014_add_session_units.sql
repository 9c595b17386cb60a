-- Units of evaluation beyond one log. A session's (or, later, a trace's) scores are keyed by
-- unit kind and unit id; `log_id` holds the unit's id, `unit_kind` says what it is.
ALTER TABLE assay.scores ADD COLUMN unit_kind text NOT NULL DEFAULT 'log'
    CHECK (unit_kind IN ('log', 'session', 'trace'));
ALTER TABLE assay.scores DROP CONSTRAINT scores_pkey;
ALTER TABLE assay.scores ADD PRIMARY KEY (deployment, unit_kind, log_id, evaluator,
                                          evaluator_version);

-- A unit is evaluated once: this row is written in the transaction that writes its scores.
-- Items (turns) that arrive after it was evaluated are counted as late.
CREATE TABLE assay.unit_evaluations (
    deployment    text NOT NULL,
    unit_kind     text NOT NULL CHECK (unit_kind IN ('session', 'trace')),
    unit_id       text NOT NULL,
    last_ts       timestamptz NOT NULL,
    items         integer NOT NULL,
    status        text NOT NULL CHECK (status IN ('evaluated', 'rejected')),
    reason        text,
    run_id        uuid NOT NULL,
    evaluated_at  timestamptz NOT NULL DEFAULT now(),
    late_items    integer NOT NULL DEFAULT 0,
    late_seen_at  timestamptz,
    PRIMARY KEY (deployment, unit_kind, unit_id)
);

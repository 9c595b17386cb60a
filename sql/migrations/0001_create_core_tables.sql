-- Core tables of Assay. Forward-only: later changes go in new numbered files.
CREATE SCHEMA IF NOT EXISTS assay;
CREATE SCHEMA IF NOT EXISTS assay_analytics;

-- Reference warehouse table in canonical form (teams may point `source` elsewhere).
CREATE TABLE assay.llm_logs (
    id            text PRIMARY KEY,
    ts            timestamptz NOT NULL,
    prompt        text,
    response      text,
    context       jsonb,
    model         text,
    provider      text,
    prompt_slug   text,
    topic         text,
    customer_id   text,
    user_id       text,
    session_id    text,
    environment   text,
    input_tokens  integer,
    output_tokens integer,
    latency_ms    integer,
    cost_usd      double precision,
    status        text,
    feedback      text,
    metadata      jsonb
);
CREATE INDEX llm_logs_ts_id ON assay.llm_logs (ts, id);

CREATE TABLE assay.eval_runs (
    run_id        uuid PRIMARY KEY,
    deployment    text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('scheduled', 'manual', 'backfill')),
    status        text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    window_start  timestamptz,
    window_end    timestamptz NOT NULL,
    flow_run_id   uuid,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    pulled        bigint NOT NULL DEFAULT 0,
    normalized    bigint NOT NULL DEFAULT 0,
    quarantined   bigint NOT NULL DEFAULT 0,
    scored        bigint NOT NULL DEFAULT 0,
    errors        bigint NOT NULL DEFAULT 0,
    skipped       bigint NOT NULL DEFAULT 0,
    error         text,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX eval_runs_deployment_started ON assay.eval_runs (deployment, started_at DESC);

-- One row per (deployment, log, evaluator, version): a rerun can never add a second.
CREATE TABLE assay.scores (
    deployment        text NOT NULL,
    log_id            text NOT NULL,
    evaluator         text NOT NULL,
    evaluator_version text NOT NULL,
    log_ts            timestamptz NOT NULL,
    judge_model       text,
    status            text NOT NULL CHECK (status IN ('ok', 'error', 'skipped')),
    score             double precision CHECK (score BETWEEN 0 AND 1),
    passed            boolean,
    label             text,
    reason            text,
    cost_usd          double precision NOT NULL DEFAULT 0,
    tokens            integer,
    latency_ms        integer,
    weight            double precision NOT NULL DEFAULT 1,
    run_id            uuid NOT NULL,
    model             text,
    provider          text,
    prompt_slug       text,
    topic             text,
    customer_id       text,
    environment       text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment, log_id, evaluator, evaluator_version),
    CHECK (status <> 'ok' OR score IS NOT NULL)
);
CREATE INDEX scores_run ON assay.scores (run_id);
CREATE INDEX scores_deployment_ts ON assay.scores (deployment, evaluator, log_ts);

CREATE TABLE assay.watermarks (
    deployment  text PRIMARY KEY,
    ts          timestamptz NOT NULL,
    log_id      text NOT NULL,
    run_id      uuid,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assay.quarantine (
    deployment  text NOT NULL,
    log_id      text NOT NULL,
    log_ts      timestamptz,
    run_id      uuid NOT NULL,
    stage       text NOT NULL CHECK (stage IN ('normalize', 'validate')),
    reasons     jsonb NOT NULL,
    raw         jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment, log_id)
);
CREATE INDEX quarantine_run ON assay.quarantine (run_id);

-- Alert state: one row per (deployment, evaluator, metric, segment) rule subject; a breach opens
-- it, cooldown paces reminders, recovery resolves it.
CREATE TABLE assay.alerts (
    deployment        text NOT NULL,
    evaluator         text NOT NULL,
    metric            text NOT NULL,
    segment           text NOT NULL DEFAULT '',  -- '' = the whole deployment; else 'by=value'
    status            text NOT NULL CHECK (status IN ('open', 'resolved')),
    rule              jsonb NOT NULL,
    value             double precision,
    low               double precision,
    high              double precision,
    n                 integer,
    opened_at         timestamptz NOT NULL,
    last_notified_at  timestamptz NOT NULL,
    resolved_at       timestamptz,
    run_id            uuid,
    PRIMARY KEY (deployment, evaluator, metric, segment)
);

-- Transactional outbox: written in the run's final transaction, delivered afterwards in order.
-- The id is derived from the run and the message, so writing it twice cannot queue it twice.
CREATE TABLE assay.outbox (
    id           text PRIMARY KEY,
    seq          bigserial NOT NULL,
    deployment   text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('summary', 'breach', 'reminder', 'recovery',
                                                'health', 'contract')),
    channel      text,
    payload      jsonb NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    run_id       uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX outbox_pending ON assay.outbox (seq) WHERE status = 'pending';

-- 0011 was edited after it was first committed (experiment_outputs added): a database that
-- applied the first version lacks the table, and 0012 alters it. This repair sorts right after
-- 0011, so such a database gets it first; on any other it does nothing. Migrations are
-- forward-only from here: schema_migrations keeps each applied file's checksum.
CREATE TABLE IF NOT EXISTS assay.experiment_outputs (
    experiment_id  text NOT NULL REFERENCES assay.experiments (experiment_id) ON DELETE CASCADE,
    item_id        text NOT NULL,
    output         text,
    error          text,
    latency_ms     integer,
    cost_usd       double precision,
    model          text,
    PRIMARY KEY (experiment_id, item_id)
);

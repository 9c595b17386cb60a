-- One paid call per score key across runs: a run claims (deployment, log, evaluator, version)
-- before it calls a judge, and releases the claim when its page commits. Another run that
-- meets a live claim leaves the log to the claiming run; a claim of a run that is no longer
-- running (finished, failed or abandoned) or older than the claim timeout can be taken over.
CREATE TABLE assay.judge_claims (
    deployment         text NOT NULL,
    log_id             text NOT NULL,
    evaluator          text NOT NULL,
    evaluator_version  text NOT NULL,
    run_id             uuid NOT NULL,
    claimed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment, log_id, evaluator, evaluator_version)
);
CREATE INDEX judge_claims_run ON assay.judge_claims (run_id);

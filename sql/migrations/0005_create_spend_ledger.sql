-- Spend ledger for paid evaluators. A call reserves its worst-case cost before it is sent and
-- settles to the actual cost after; caps are checked under row locks, so concurrent runs and
-- backfills of one deployment share the day's budget without overspending it.
CREATE TABLE assay.spend (
    deployment    text NOT NULL,
    day           date NOT NULL,
    spent_usd     double precision NOT NULL DEFAULT 0,
    reserved_usd  double precision NOT NULL DEFAULT 0,
    calls         bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (deployment, day)
);

CREATE TABLE assay.run_spend (
    run_id        uuid PRIMARY KEY,
    deployment    text NOT NULL,
    spent_usd     double precision NOT NULL DEFAULT 0,
    reserved_usd  double precision NOT NULL DEFAULT 0,
    calls         bigint NOT NULL DEFAULT 0,
    refused       bigint NOT NULL DEFAULT 0
);

-- Dedupe: identical (prompt, response, context) are judged once per evaluator version.
ALTER TABLE assay.scores ADD COLUMN content_hash text;
CREATE INDEX scores_content ON assay.scores (deployment, evaluator, evaluator_version, content_hash)
    WHERE content_hash IS NOT NULL AND status = 'ok';

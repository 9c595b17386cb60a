-- 0015 was edited after it was first committed (unit_evaluations.cost_usd and tokens added): a
-- database that applied the first version lacks the columns; on any other this does nothing.
ALTER TABLE assay.unit_evaluations
    ADD COLUMN IF NOT EXISTS cost_usd double precision,
    ADD COLUMN IF NOT EXISTS tokens bigint;

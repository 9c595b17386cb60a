-- LLM judges: a call to a model without a known price has an unknown cost, recorded as NULL
-- (and counted as such in run details), never as zero.
ALTER TABLE assay.scores ALTER COLUMN cost_usd DROP NOT NULL;
COMMENT ON COLUMN assay.scores.cost_usd IS 'USD spent on this score; NULL = judge price unknown';

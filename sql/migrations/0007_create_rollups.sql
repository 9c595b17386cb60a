-- Hourly rollups the report, the dashboard and the run artifacts read, so their cost grows with
-- hours x segments, not with the number of scores. Score rollups are recomputed from
-- `assay.scores` for the hours a run touched (hourly runs and backfill chunks); usage rollups are
-- added page by page by the hourly run, in the transaction that moves the watermark, so every
-- log counts exactly once.

-- Histograms are float8[] of weighted counts; `vec_sum` merges them.
CREATE FUNCTION assay.vec_add(a double precision[], b double precision[])
RETURNS double precision[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a
                ELSE ARRAY(SELECT x + y FROM unnest(a, b) AS t(x, y)) END
$$;
CREATE AGGREGATE assay.vec_sum(double precision[]) (SFUNC = assay.vec_add, STYPE = double precision[]);

-- Scores live in [0, 1]: 101 bins, bin i holds [i/100, (i+1)/100) and bin 100 holds exactly 1.
CREATE FUNCTION assay.score_hist_step(state double precision[], score double precision,
                                      weight double precision)
RETURNS double precision[] LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    bin int;
BEGIN
    IF state IS NULL THEN
        state := array_fill(0::double precision, ARRAY[101]);
    END IF;
    IF score IS NOT NULL THEN
        bin := least(100, greatest(0, floor(score * 100)::int)) + 1;
        state[bin] := state[bin] + coalesce(weight, 1);
    END IF;
    RETURN state;
END
$$;
CREATE AGGREGATE assay.score_hist(double precision, double precision) (
    SFUNC = assay.score_hist_step, STYPE = double precision[]
);

-- The smallest bin whose cumulative weight reaches p of the total (0-based), or NULL if empty.
CREATE FUNCTION assay.hist_quantile_bin(hist double precision[], p double precision)
RETURNS int LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    total double precision := 0;
    running double precision := 0;
    i int;
BEGIN
    IF hist IS NULL THEN RETURN NULL; END IF;
    FOR i IN 1 .. array_length(hist, 1) LOOP total := total + hist[i]; END LOOP;
    IF total <= 0 THEN RETURN NULL; END IF;
    FOR i IN 1 .. array_length(hist, 1) LOOP
        running := running + hist[i];
        IF running >= p * total * (1 - 1e-12) THEN RETURN i - 1; END IF;
    END LOOP;
    RETURN array_length(hist, 1) - 1;
END
$$;

-- Latency bins are logarithmic: 16 per decade from 1 ms (bin 0 holds < 1 ms); a bin's value is
-- its geometric midpoint, within 7.5 percent of any latency in it.
CREATE FUNCTION assay.latency_bin_ms(bin int) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN bin IS NULL THEN NULL WHEN bin = 0 THEN 0.5
                ELSE power(10, (bin - 0.5) / 16.0) END
$$;

CREATE TABLE assay.score_rollups (
    deployment        text NOT NULL,
    evaluator         text NOT NULL,
    evaluator_version text NOT NULL,
    hour              timestamptz NOT NULL,   -- the hour of the logged call (log_ts)
    dim               text NOT NULL,          -- 'all' or a segment column
    value             text NOT NULL,          -- the segment's value; '(none)' for NULL
    n                 bigint NOT NULL,        -- score rows
    ok                bigint NOT NULL,
    errors            bigint NOT NULL,
    skipped           bigint NOT NULL,
    judged            bigint NOT NULL,        -- ok rows with a pass/fail verdict
    passed            bigint NOT NULL,
    failed            bigint NOT NULL,
    w                 double precision NOT NULL,  -- sum of sampling weights over ok rows
    w2                double precision NOT NULL,  -- sum of squared weights (Kish n_eff)
    wx                double precision NOT NULL,  -- weighted score sum
    wx2               double precision NOT NULL,
    judged_w          double precision NOT NULL,
    passed_w          double precision NOT NULL,
    judged_w2         double precision NOT NULL,
    error_w           double precision NOT NULL,  -- weight of error rows (error-rate estimates)
    all_w             double precision NOT NULL,
    hist              double precision[],     -- weighted score histogram (101 bins)
    cost_usd          double precision NOT NULL,
    unknown_cost      bigint NOT NULL,
    tokens            bigint NOT NULL,
    PRIMARY KEY (deployment, hour, dim, value, evaluator, evaluator_version)
);
CREATE INDEX score_rollups_read ON assay.score_rollups (dim, hour);

CREATE TABLE assay.usage_rollups (
    deployment         text NOT NULL,
    hour               timestamptz NOT NULL,
    dim                text NOT NULL,
    value              text NOT NULL,
    requests           bigint NOT NULL,
    errors             bigint NOT NULL,   -- status = 'error'
    refusals           bigint NOT NULL,   -- responses that refuse (the refusal heuristic)
    repeats            bigint NOT NULL,   -- same user (or session) asked the same prompt before
    feedback_n         bigint NOT NULL,
    feedback_positive  bigint NOT NULL,
    input_tokens       bigint NOT NULL,
    output_tokens      bigint NOT NULL,
    token_requests     bigint NOT NULL,   -- requests that reported tokens
    cost_usd           double precision NOT NULL,
    cost_requests      bigint NOT NULL,   -- requests that reported a cost
    latency_hist       double precision[] NOT NULL,
    PRIMARY KEY (deployment, hour, dim, value)
);
CREATE INDEX usage_rollups_read ON assay.usage_rollups (dim, hour);

-- Rollup refreshes and backfills read scores by deployment and time across evaluators.
CREATE INDEX scores_deployment_log_ts ON assay.scores (deployment, log_ts);

-- A backfill is a parent run and one child run per chunk; children share the parent's budget.
ALTER TABLE assay.eval_runs ADD COLUMN parent_run_id uuid;
ALTER TABLE assay.eval_runs ADD COLUMN evaluators text[];

-- Usage counts every log a run or a backfill read, once. The hourly runs count the logs their
-- watermark moves over: from `counted_from` (where the first of them started reading) to the
-- watermark. A backfill chunk reads logs outside that range (history from before the first
-- hourly run) or beside it, so it counts a log only outside it and only once, recorded here;
-- an hourly run in turn leaves out a log a backfill already counted. (Before, backfilled logs
-- were scored and quarantined but missing from usage, so shares of usage disagreed.)
ALTER TABLE assay.watermarks ADD COLUMN counted_from timestamptz;

-- Existing deployments: from the first window an hourly or manual run read.
UPDATE assay.watermarks w
SET counted_from = (
    SELECT min(r.window_start) FROM assay.eval_runs r
    WHERE r.deployment = w.deployment AND r.kind IN ('scheduled', 'manual')
);

CREATE TABLE assay.usage_counted (
    deployment  text NOT NULL,
    log_id      text NOT NULL,
    PRIMARY KEY (deployment, log_id)
);

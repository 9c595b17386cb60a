-- name: lock_rollups
-- Refreshes of one deployment's rollups take turns, so two writers never interleave a delete.
SELECT pg_advisory_xact_lock(hashtext('assay.rollups'), hashtext(:deployment))

-- name: delete_score_rollups
DELETE FROM assay.score_rollups
WHERE deployment = :deployment AND hour >= :lo AND hour < :hi

-- name: insert_score_rollups
-- Recomputed from the scores of whole hours, so rerunning it is harmless.
INSERT INTO assay.score_rollups
SELECT deployment, evaluator, evaluator_version, date_trunc('hour', log_ts) AS hour, dim, value,
       count(*),
       count(*) FILTER (WHERE status = 'ok'),
       count(*) FILTER (WHERE status = 'error'),
       count(*) FILTER (WHERE status = 'skipped'),
       count(*) FILTER (WHERE status = 'ok' AND passed IS NOT NULL),
       count(*) FILTER (WHERE status = 'ok' AND passed),
       count(*) FILTER (WHERE status = 'ok' AND NOT passed),
       coalesce(sum(weight) FILTER (WHERE status = 'ok'), 0),
       coalesce(sum(weight * weight) FILTER (WHERE status = 'ok'), 0),
       coalesce(sum(weight * score) FILTER (WHERE status = 'ok'), 0),
       coalesce(sum(weight * score * score) FILTER (WHERE status = 'ok'), 0),
       coalesce(sum(weight) FILTER (WHERE status = 'ok' AND passed IS NOT NULL), 0),
       coalesce(sum(weight) FILTER (WHERE status = 'ok' AND passed), 0),
       coalesce(sum(weight * weight) FILTER (WHERE status = 'ok' AND passed IS NOT NULL), 0),
       coalesce(sum(weight) FILTER (WHERE status = 'error'), 0),
       coalesce(sum(weight), 0),
       assay.score_hist(score, weight) FILTER (WHERE status = 'ok'),
       coalesce(sum(cost_usd), 0),
       count(*) FILTER (WHERE cost_usd IS NULL),
       coalesce(sum(tokens), 0)
FROM assay_analytics.score_segments
WHERE deployment = :deployment AND log_ts >= :lo AND log_ts < :hi
GROUP BY deployment, evaluator, evaluator_version, date_trunc('hour', log_ts), dim, value

-- name: add_usage
INSERT INTO assay.usage_rollups AS u
VALUES (:deployment, :hour, :dim, :value, :requests, :errors, :refusals, :repeats, :feedback_n,
        :feedback_positive, :input_tokens, :output_tokens, :token_requests, :cost_usd,
        :cost_requests, :latency_hist)
ON CONFLICT (deployment, hour, dim, value) DO UPDATE SET
    requests = u.requests + EXCLUDED.requests,
    errors = u.errors + EXCLUDED.errors,
    refusals = u.refusals + EXCLUDED.refusals,
    repeats = u.repeats + EXCLUDED.repeats,
    feedback_n = u.feedback_n + EXCLUDED.feedback_n,
    feedback_positive = u.feedback_positive + EXCLUDED.feedback_positive,
    input_tokens = u.input_tokens + EXCLUDED.input_tokens,
    output_tokens = u.output_tokens + EXCLUDED.output_tokens,
    token_requests = u.token_requests + EXCLUDED.token_requests,
    cost_usd = u.cost_usd + EXCLUDED.cost_usd,
    cost_requests = u.cost_requests + EXCLUDED.cost_requests,
    latency_hist = assay.vec_add(u.latency_hist, EXCLUDED.latency_hist)

-- name: score_cells
-- Rollups merged over [since, until) per evaluator, slice value and (optionally) time bucket.
-- :bucket is 'hour', 'day' or 'all' (one bucket for the whole range).
SELECT deployment, evaluator,
       CASE WHEN :bucket = 'all' THEN CAST(:since AS timestamptz)
            ELSE date_trunc(:bucket, hour) END AS bucket,
       value,
       array_agg(DISTINCT evaluator_version) AS versions,
       sum(n)::bigint AS n, sum(ok)::bigint AS ok, sum(errors)::bigint AS errors, sum(skipped)::bigint AS skipped,
       sum(judged)::bigint AS judged, sum(passed)::bigint AS passed, sum(failed)::bigint AS failed,
       sum(w) AS w, sum(w2) AS w2, sum(wx) AS wx, sum(wx2) AS wx2,
       sum(judged_w) AS judged_w, sum(passed_w) AS passed_w, sum(judged_w2) AS judged_w2,
       sum(error_w) AS error_w, sum(all_w) AS all_w,
       -- Percentiles from the merged histogram, by the functions the views use (bin / 100).
       assay.hist_quantile_bin(assay.vec_sum(hist), 0.05)::double precision / 100 AS p5,
       assay.hist_quantile_bin(assay.vec_sum(hist), 0.25)::double precision / 100 AS p25,
       assay.hist_quantile_bin(assay.vec_sum(hist), 0.50)::double precision / 100 AS p50,
       assay.hist_quantile_bin(assay.vec_sum(hist), 0.75)::double precision / 100 AS p75,
       assay.hist_quantile_bin(assay.vec_sum(hist), 0.95)::double precision / 100 AS p95,
       sum(cost_usd) AS cost_usd, sum(unknown_cost)::bigint AS unknown_cost, sum(tokens)::bigint AS tokens
FROM assay.score_rollups
WHERE dim = :dim AND hour >= :since AND hour < :until
  AND (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
  AND (CAST(:evaluators AS text[]) IS NULL OR evaluator = ANY(:evaluators))
GROUP BY deployment, evaluator, 3, value
ORDER BY deployment, evaluator, 3, value

-- name: usage_cells
SELECT deployment,
       CASE WHEN :bucket = 'all' THEN CAST(:since AS timestamptz)
            ELSE date_trunc(:bucket, hour) END AS bucket,
       value,
       sum(requests)::bigint AS requests, sum(errors)::bigint AS errors, sum(refusals)::bigint AS refusals,
       sum(repeats)::bigint AS repeats, sum(feedback_n)::bigint AS feedback_n,
       sum(feedback_positive)::bigint AS feedback_positive, sum(input_tokens)::bigint AS input_tokens,
       sum(output_tokens)::bigint AS output_tokens, sum(token_requests)::bigint AS token_requests,
       sum(cost_usd) AS cost_usd, sum(cost_requests)::bigint AS cost_requests,
       assay.latency_bin_ms(assay.hist_quantile_bin(assay.vec_sum(latency_hist), 0.50))
           AS latency_p50_ms,
       assay.latency_bin_ms(assay.hist_quantile_bin(assay.vec_sum(latency_hist), 0.95))
           AS latency_p95_ms,
       assay.latency_bin_ms(assay.hist_quantile_bin(assay.vec_sum(latency_hist), 0.99))
           AS latency_p99_ms
FROM assay.usage_rollups
WHERE dim = :dim AND hour >= :since AND hour < :until
  AND (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
GROUP BY deployment, 2, value
ORDER BY deployment, 2, value

-- name: spend_days
SELECT deployment, day, spent_usd, calls, max_usd_per_day
FROM assay_analytics.budget_daily
WHERE day >= CAST(:since AS date) AND day <= CAST(:until AS date)
  AND (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
ORDER BY deployment, day

-- name: known_names
-- Deployments and evaluator (score) names that have results, for "did you mean" on the CLI.
SELECT 'deployment' AS kind, deployment AS name FROM assay.eval_runs
WHERE kind <> 'check'  -- experiments are not deployments
GROUP BY deployment
UNION ALL
SELECT 'evaluator', evaluator FROM assay.score_rollups GROUP BY evaluator

-- name: failing_logs
-- The latest failing logs per deployment and evaluator in a range (dashboard drill-down;
-- sessions and traces have their own section).
SELECT deployment, evaluator, log_id, log_ts, score, reason
FROM (
    SELECT s.*, row_number() OVER (PARTITION BY deployment, evaluator ORDER BY log_ts DESC) AS rn
    FROM assay.scores s
    WHERE status = 'ok' AND NOT passed AND log_ts >= :since AND log_ts < :until
      AND unit_kind = 'log'
      AND (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
) latest
WHERE rn <= :per_evaluator
ORDER BY deployment, evaluator, log_ts DESC

-- name: alert_examples
-- The latest failing logs of each open alert's own segment (`by=value`; the rule's `by` is one
-- of a fixed set of columns; a segment-less alert takes the evaluator's latest failures).
SELECT a.deployment, a.evaluator, a.metric, a.segment, f.log_id, f.log_ts, f.score, f.reason
FROM assay.alerts a
CROSS JOIN LATERAL (
    SELECT s.log_id, s.log_ts, s.score, s.reason
    FROM assay.scores s
    WHERE s.deployment = a.deployment AND s.evaluator = a.evaluator AND s.unit_kind = 'log'
      AND s.status = 'ok' AND NOT s.passed AND s.log_ts >= :since AND s.log_ts < :until
      AND (a.segment = '' OR a.segment = (a.rule ->> 'by') || '=' || coalesce(CASE a.rule ->> 'by'
              WHEN 'model' THEN s.model WHEN 'provider' THEN s.provider
              WHEN 'prompt_slug' THEN s.prompt_slug WHEN 'topic' THEN s.topic
              WHEN 'customer_id' THEN s.customer_id WHEN 'environment' THEN s.environment
           END, '(none)'))
    ORDER BY s.log_ts DESC
    LIMIT :per_alert
) f
WHERE a.status = 'open' AND (CAST(:deployment AS text) IS NULL OR a.deployment = :deployment)
ORDER BY a.deployment, a.evaluator, a.segment, f.log_ts DESC

-- name: log_scores
-- Every score of some logs of one deployment (the log detail section).
SELECT log_id, evaluator, evaluator_version, status, score, passed, label, reason, judge_model
FROM assay.scores
WHERE deployment = :deployment AND log_id = ANY(:log_ids) AND unit_kind = 'log'
ORDER BY log_id, evaluator

-- name: open_alerts_all
SELECT deployment, evaluator, metric, segment, value, low, high, n, opened_at, opened_value, rule
FROM assay.alerts
WHERE status = 'open' AND (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
ORDER BY deployment, opened_at

-- name: quarantine_by_segment
-- Quarantined logs per segment value (the mapped field in the stored row), to set beside
-- quality: a segment that loses more logs to the contract is measured on a biased remainder.
SELECT deployment,
       CASE WHEN :dim = 'all' THEN 'all' ELSE coalesce(raw ->> :dim, '(none)') END AS value,
       count(*)::bigint AS quarantined
FROM assay.quarantine
WHERE log_ts >= :since AND log_ts < :until
  AND (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
GROUP BY 1, 2

-- name: dashboard_experiments
-- The newest completed experiments of every dataset (oldest first), with their totals.
SELECT experiment_id, name, dataset, dataset_digest, target, git_commit, git_branch,
       created_at, gate_passed, cost_usd, totals, repeats
FROM (
    SELECT e.*, row_number() OVER (PARTITION BY dataset ORDER BY created_at DESC) AS newest
    FROM assay.experiments e
    WHERE status = 'completed'
) e
WHERE newest <= :per_dataset
ORDER BY dataset, created_at

-- name: dashboard_experiment_items
-- Per experiment and item: what the target answered and each evaluator's verdict, for the
-- side-by-side diff of two experiments.
SELECT o.experiment_id, o.item_id, left(o.output, :chars) AS output, left(o.error, :chars) AS error,
       (SELECT jsonb_object_agg(s.evaluator, s.passed)
        FROM assay.scores s
        WHERE s.deployment = 'experiment-' || o.experiment_id AND s.log_id = o.item_id
          AND s.status = 'ok') AS verdicts
FROM assay.experiment_outputs o
WHERE o.experiment_id = ANY(:ids)
ORDER BY o.experiment_id, o.item_id
LIMIT :max_rows

-- name: dashboard_dataset_items
SELECT dataset, item_id, left(input, :chars) AS input, left(expected, :chars) AS expected
FROM assay.dataset_items
WHERE dataset = ANY(:datasets) AND retired_at IS NULL

-- name: dashboard_agreement
-- Weekly agreement of each judge version with people (the dashboard's drift chart).
SELECT deployment, evaluator, evaluator_version, week, labels, accuracy, kappa
FROM assay_analytics.judge_agreement
WHERE (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
ORDER BY deployment, evaluator, evaluator_version, week

-- name: dashboard_units
-- Sessions and traces evaluated in the range, per deployment and kind: how many, their size,
-- what each cost the app (its calls' logged cost) and what judging each cost.
SELECT u.deployment, u.unit_kind, count(*) AS units, avg(u.items)::float AS mean_items,
       avg(u.cost_usd) AS cost_per_unit,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY u.cost_usd) AS p90_cost,
       avg(u.tokens)::float AS tokens_per_unit,
       (SELECT coalesce(sum(s.cost_usd), 0) FROM assay.scores s
        WHERE s.deployment = u.deployment AND s.unit_kind = u.unit_kind
          AND s.log_ts >= :since AND s.log_ts < :until) / count(*) AS judge_cost_per_unit
FROM assay.unit_evaluations u
WHERE u.status = 'evaluated' AND u.last_ts >= :since AND u.last_ts < :until
  AND (CAST(:deployment AS text) IS NULL OR u.deployment = :deployment)
GROUP BY u.deployment, u.unit_kind
ORDER BY u.deployment, u.unit_kind

-- name: dashboard_unit_quality
-- Each session and trace evaluator's pass rate in the range (sampled judges weighted by their
-- inclusion weights, as the report does).
SELECT deployment, unit_kind, evaluator, count(*) FILTER (WHERE status = 'ok') AS n,
       sum(weight * passed::int) FILTER (WHERE status = 'ok' AND passed IS NOT NULL)
         / nullif(sum(weight) FILTER (WHERE status = 'ok' AND passed IS NOT NULL), 0)
         AS pass_rate
FROM assay.scores
WHERE unit_kind <> 'log' AND log_ts >= :since AND log_ts < :until
  AND (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
GROUP BY deployment, unit_kind, evaluator
ORDER BY deployment, unit_kind, evaluator

-- name: failing_units
-- The latest failing sessions and traces per deployment and evaluator in a range.
SELECT deployment, unit_kind, evaluator, log_id AS unit_id, log_ts, score, reason
FROM (
    SELECT s.*, row_number() OVER (PARTITION BY deployment, unit_kind, evaluator
                                   ORDER BY log_ts DESC) AS rn
    FROM assay.scores s
    WHERE status = 'ok' AND NOT passed AND log_ts >= :since AND log_ts < :until
      AND unit_kind <> 'log'
      AND (CAST(:deployment AS text) IS NULL OR deployment = :deployment)
) latest
WHERE rn <= :per_evaluator
ORDER BY deployment, unit_kind, evaluator, log_ts DESC

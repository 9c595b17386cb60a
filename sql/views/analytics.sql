-- Analytics views in schema assay_analytics, re-applied by `assay migrate`. Read-only users:
--   CREATE ROLE assay_reader LOGIN; GRANT USAGE ON SCHEMA assay, assay_analytics TO assay_reader;
--   GRANT SELECT ON ALL TABLES IN SCHEMA assay, assay_analytics TO assay_reader;
-- Weighted columns (named weighted_* or *_rate) use each score's sampling weight (N_h/n_h in a
-- stratified sample, 1/rate in a plain one, 0 for priority-only picks), so they estimate the
-- population; n, ok, errors and skipped are plain counts of score rows.
DROP SCHEMA IF EXISTS assay_analytics CASCADE;
CREATE SCHEMA assay_analytics;

-- Every score once per slice: dim 'all' plus one row per segment column.
CREATE VIEW assay_analytics.score_segments AS
SELECT s.*, seg.dim, seg.value
FROM assay.scores s
CROSS JOIN LATERAL (VALUES
    ('all', 'all'),
    ('model', coalesce(s.model, '(none)')),
    ('provider', coalesce(s.provider, '(none)')),
    ('prompt_slug', coalesce(s.prompt_slug, '(none)')),
    ('topic', coalesce(s.topic, '(none)')),
    ('customer_id', coalesce(s.customer_id, '(none)')),
    ('environment', coalesce(s.environment, '(none)'))
) AS seg(dim, value);
COMMENT ON VIEW assay_analytics.score_segments IS
    'assay.scores unpivoted: one row per score and slice (dim = all or a segment column).';

CREATE VIEW assay_analytics.score_periods AS
SELECT g.granularity, date_trunc(g.granularity, s.log_ts) AS period, s.*
FROM assay_analytics.score_segments s
CROSS JOIN (VALUES ('hour'), ('day'), ('week')) AS g(granularity);

-- Distributions per deployment, evaluator, version, period (hour, day, week) and slice.
CREATE VIEW assay_analytics.score_distribution AS
WITH ranked AS (
    SELECT granularity, period, deployment, evaluator, evaluator_version, dim, value, score, weight,
           sum(weight) OVER w_cum AS cum_w,
           sum(weight) OVER w_all AS total_w
    FROM assay_analytics.score_periods
    WHERE status = 'ok'
    WINDOW w_all AS (PARTITION BY granularity, period, deployment, evaluator, evaluator_version,
                                  dim, value),
           w_cum AS (w_all ORDER BY score ROWS UNBOUNDED PRECEDING)
),
quantiles AS (
    SELECT granularity, period, deployment, evaluator, evaluator_version, dim, value,
           min(score) FILTER (WHERE cum_w >= 0.05 * total_w * (1 - 1e-12)) AS p5,
           min(score) FILTER (WHERE cum_w >= 0.25 * total_w * (1 - 1e-12)) AS p25,
           min(score) FILTER (WHERE cum_w >= 0.50 * total_w * (1 - 1e-12)) AS p50,
           min(score) FILTER (WHERE cum_w >= 0.75 * total_w * (1 - 1e-12)) AS p75,
           min(score) FILTER (WHERE cum_w >= 0.95 * total_w * (1 - 1e-12)) AS p95
    FROM ranked
    WHERE total_w > 0
    GROUP BY granularity, period, deployment, evaluator, evaluator_version, dim, value
),
counts AS (
    SELECT granularity, period, deployment, evaluator, evaluator_version, dim, value,
           count(*) AS n,
           count(*) FILTER (WHERE status = 'ok') AS ok,
           count(*) FILTER (WHERE status = 'error') AS errors,
           count(*) FILTER (WHERE status = 'skipped') AS skipped,
           avg(score) FILTER (WHERE status = 'ok') AS mean_score,
           sum(weight * score) FILTER (WHERE status = 'ok')
               / nullif(sum(weight) FILTER (WHERE status = 'ok'), 0) AS weighted_mean,
           coalesce(sum(weight) FILTER (WHERE status = 'ok' AND passed), 0)
               / nullif(sum(weight) FILTER (WHERE status = 'ok' AND passed IS NOT NULL), 0)
               AS pass_rate,
           count(*) FILTER (WHERE status = 'ok' AND passed)::double precision
               / nullif(count(*) FILTER (WHERE status = 'ok' AND passed IS NOT NULL), 0)
               AS unweighted_pass_rate,
           coalesce(sum(weight) FILTER (WHERE status = 'error'), 0)
               / nullif(sum(weight), 0) AS error_rate,
           sum(weight) FILTER (WHERE status = 'ok') AS population_estimate,
           coalesce(sum(cost_usd), 0) AS cost_usd
    FROM assay_analytics.score_periods
    GROUP BY granularity, period, deployment, evaluator, evaluator_version, dim, value
)
SELECT c.*, q.p5, q.p25, q.p50, q.p75, q.p95
FROM counts c
LEFT JOIN quantiles q USING (granularity, period, deployment, evaluator, evaluator_version, dim,
                             value);
COMMENT ON VIEW assay_analytics.score_distribution IS
    'Per period (granularity hour|day|week), deployment, evaluator, version and slice. Weighted by '
    'sampling weight: weighted_mean, pass_rate, error_rate, population_estimate and the '
    'percentiles p5..p95 (smallest score whose cumulative weight reaches p). Unweighted: n, ok, '
    'errors, skipped, mean_score, unweighted_pass_rate, cost_usd.';

CREATE VIEW assay_analytics.score_distribution_hourly AS
SELECT period AS hour, deployment, evaluator, evaluator_version, dim, value, n, ok, errors,
       skipped, mean_score, weighted_mean, pass_rate, unweighted_pass_rate, error_rate,
       population_estimate, cost_usd, p5, p25, p50, p75, p95
FROM assay_analytics.score_distribution WHERE granularity = 'hour';

CREATE VIEW assay_analytics.score_distribution_daily AS
SELECT period::date AS day, deployment, evaluator, evaluator_version, dim, value, n, ok, errors,
       skipped, mean_score, weighted_mean, pass_rate, unweighted_pass_rate, error_rate,
       population_estimate, cost_usd, p5, p25, p50, p75, p95
FROM assay_analytics.score_distribution WHERE granularity = 'day';

-- Day-over-day and week-over-week change per evaluator (all versions) and slice.
CREATE VIEW assay_analytics.score_changes AS
WITH per_period AS (
    SELECT granularity, period, deployment, evaluator, dim, value,
           count(*) FILTER (WHERE status = 'ok') AS ok,
           coalesce(sum(weight) FILTER (WHERE status = 'ok' AND passed), 0)
               / nullif(sum(weight) FILTER (WHERE status = 'ok' AND passed IS NOT NULL), 0)
               AS pass_rate,
           sum(weight * score) FILTER (WHERE status = 'ok')
               / nullif(sum(weight) FILTER (WHERE status = 'ok'), 0) AS weighted_mean
    FROM assay_analytics.score_periods
    WHERE granularity IN ('day', 'week')
    GROUP BY granularity, period, deployment, evaluator, dim, value
)
SELECT cur.granularity, cur.period, cur.deployment, cur.evaluator, cur.dim, cur.value,
       cur.ok, cur.pass_rate, cur.weighted_mean,
       prev.ok AS previous_ok, prev.pass_rate AS previous_pass_rate,
       prev.weighted_mean AS previous_weighted_mean,
       cur.pass_rate - prev.pass_rate AS pass_rate_change,
       cur.weighted_mean - prev.weighted_mean AS weighted_mean_change
FROM per_period cur
LEFT JOIN per_period prev
  ON prev.granularity = cur.granularity AND prev.deployment = cur.deployment
 AND prev.evaluator = cur.evaluator AND prev.dim = cur.dim AND prev.value = cur.value
 AND prev.period = cur.period - CASE cur.granularity WHEN 'day' THEN interval '1 day'
                                                      ELSE interval '1 week' END;
COMMENT ON VIEW assay_analytics.score_changes IS
    'Day-over-day (granularity day) and week-over-week (granularity week) change of the weighted '
    'pass rate and weighted mean, per deployment, evaluator and slice.';

-- Usage over all of the logs the hourly runs admitted (from assay.usage_rollups).
CREATE VIEW assay_analytics.usage AS
WITH periods AS (
    SELECT g.granularity, date_trunc(g.granularity, u.hour) AS period, u.*
    FROM assay.usage_rollups u CROSS JOIN (VALUES ('hour'), ('day'), ('week')) AS g(granularity)
),
merged AS (
    SELECT granularity, period, deployment, dim, value,
           sum(requests) AS requests, sum(errors) AS errors, sum(refusals) AS refusals,
           sum(repeats) AS repeats, sum(feedback_n) AS feedback_n,
           sum(feedback_positive) AS feedback_positive, sum(input_tokens) AS input_tokens,
           sum(output_tokens) AS output_tokens, sum(token_requests) AS token_requests,
           sum(cost_usd) AS cost_usd, sum(cost_requests) AS cost_requests,
           assay.vec_sum(latency_hist) AS latency_hist
    FROM periods
    GROUP BY granularity, period, deployment, dim, value
)
SELECT granularity, period, deployment, dim, value, requests, input_tokens, output_tokens,
       (input_tokens + output_tokens)::double precision / nullif(token_requests, 0)
           AS tokens_per_query,
       cost_usd, cost_usd / nullif(cost_requests, 0) AS cost_per_query,
       assay.latency_bin_ms(assay.hist_quantile_bin(latency_hist, 0.50)) AS latency_p50_ms,
       assay.latency_bin_ms(assay.hist_quantile_bin(latency_hist, 0.95)) AS latency_p95_ms,
       assay.latency_bin_ms(assay.hist_quantile_bin(latency_hist, 0.99)) AS latency_p99_ms,
       errors::double precision / nullif(requests, 0) AS error_rate,
       refusals::double precision / nullif(requests, 0) AS refusal_rate,
       repeats::double precision / nullif(requests, 0) AS repeat_query_rate,
       feedback_positive::double precision / nullif(feedback_n, 0) AS feedback_positive_rate,
       feedback_n
FROM merged;
COMMENT ON VIEW assay_analytics.usage IS
    'Usage per period (hour|day|week), deployment and slice over every admitted log (no sampling, '
    'so nothing is weighted). Latency percentiles come from a log-scale histogram (16 bins per '
    'decade): each is within 7.5 percent of the exact value.';

-- Eval spend per deployment, evaluator and day (the day the judge was paid, not the log's).
CREATE VIEW assay_analytics.eval_spend_daily AS
SELECT deployment, evaluator, created_at::date AS day,
       count(*) FILTER (WHERE judge_model IS NOT NULL) AS judge_calls,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       count(*) FILTER (WHERE cost_usd IS NULL) AS unknown_cost_calls
FROM assay.scores
GROUP BY deployment, evaluator, created_at::date;
COMMENT ON VIEW assay_analytics.eval_spend_daily IS
    'Judge spend per deployment, evaluator and day. unknown_cost_calls are calls to a model with '
    'no known price (never counted as free).';

-- The day's ledger against the latest daily cap a run reported.
CREATE VIEW assay_analytics.budget_daily AS
SELECT s.deployment, s.day, s.spent_usd, s.reserved_usd, s.calls,
       (SELECT (r.details -> 'spend' ->> 'max_usd_per_day')::double precision
        FROM assay.eval_runs r
        WHERE r.deployment = s.deployment AND r.details ? 'spend'
        ORDER BY r.started_at DESC LIMIT 1) AS max_usd_per_day
FROM assay.spend s;

-- Judge against people: each judged log a person labelled (the earliest current human label
-- of that criterion), with the judge's verdict and the label's queue weight.
CREATE VIEW assay_analytics.label_pairs AS
SELECT DISTINCT ON (s.deployment, s.evaluator, s.evaluator_version, s.log_id)
       s.deployment, s.evaluator, s.evaluator_version, s.log_id, s.log_ts,
       s.created_at AS judged_at, s.passed AS judge_passed, s.score AS judge_score,
       l.passed AS human_passed, l.score AS human_score, l.annotator, l.created_at AS labelled_at,
       coalesce(1.0 / qi.inclusion_probability, 1.0) AS weight
FROM assay.labels l
JOIN assay.scores s
  ON s.deployment = l.deployment AND s.log_id = l.log_id AND s.evaluator = l.criterion
 AND s.status = 'ok' AND s.passed IS NOT NULL
LEFT JOIN assay.queue_items qi ON qi.queue_id = l.queue_id AND qi.log_id = l.log_id
WHERE l.superseded_at IS NULL AND l.source <> 'user_feedback' AND l.passed IS NOT NULL
ORDER BY s.deployment, s.evaluator, s.evaluator_version, s.log_id, l.created_at;
COMMENT ON VIEW assay_analytics.label_pairs IS
    'Judged logs a person labelled: judge verdict beside the earliest current human label.';

-- Weekly agreement per judge version (week of judging): weighted 2x2 table, accuracy, kappa.
-- `assay agreement` adds bootstrap intervals and the other metrics.
CREATE VIEW assay_analytics.judge_agreement AS
WITH t AS (
    SELECT deployment, evaluator, evaluator_version, date_trunc('week', judged_at) AS week,
           count(*) AS labels,
           sum(weight) FILTER (WHERE judge_passed AND human_passed) AS a,
           sum(weight) FILTER (WHERE judge_passed AND NOT human_passed) AS b,
           sum(weight) FILTER (WHERE NOT judge_passed AND human_passed) AS c,
           sum(weight) FILTER (WHERE NOT judge_passed AND NOT human_passed) AS d
    FROM assay_analytics.label_pairs
    GROUP BY 1, 2, 3, 4
), p AS (
    SELECT *, coalesce(a, 0) + coalesce(b, 0) + coalesce(c, 0) + coalesce(d, 0) AS total FROM t
), r AS (
    SELECT *, (coalesce(a, 0) + coalesce(d, 0)) / total AS accuracy,
           (coalesce(a, 0) + coalesce(b, 0)) / total AS judge_pass,
           (coalesce(a, 0) + coalesce(c, 0)) / total AS human_pass
    FROM p
)
SELECT deployment, evaluator, evaluator_version, week, labels, accuracy,
       CASE WHEN 1 - (judge_pass * human_pass + (1 - judge_pass) * (1 - human_pass)) > 0
            THEN (accuracy - (judge_pass * human_pass + (1 - judge_pass) * (1 - human_pass)))
                 / (1 - (judge_pass * human_pass + (1 - judge_pass) * (1 - human_pass)))
       END AS kappa,
       judge_pass AS judge_pass_rate, human_pass AS human_pass_rate
FROM r;
COMMENT ON VIEW assay_analytics.judge_agreement IS
    'Per deployment, evaluator, judge version and week of judging: labels, weighted accuracy and Cohen''s kappa.';

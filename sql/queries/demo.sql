-- name: create_raw_tables
CREATE SCHEMA IF NOT EXISTS demo_raw;
CREATE TABLE IF NOT EXISTS demo_raw.openai_chat_logs (
    id          bigint PRIMARY KEY,
    ts          timestamptz NOT NULL,
    request     jsonb,
    response    text,
    customer_id text,
    latency_ms  integer
);
CREATE INDEX IF NOT EXISTS openai_chat_logs_ts_id ON demo_raw.openai_chat_logs (ts, id);
-- Spans as an OTel exporter writes them (columns added to a demo from before traces).
CREATE TABLE IF NOT EXISTS demo_raw.otel_spans (
    span_id        text PRIMARY KEY,
    trace_id       text,
    parent_span_id text,
    start_time     timestamptz NOT NULL,
    end_time       timestamptz,
    attributes     jsonb
);
ALTER TABLE demo_raw.otel_spans ADD COLUMN IF NOT EXISTS trace_id text;
ALTER TABLE demo_raw.otel_spans ADD COLUMN IF NOT EXISTS parent_span_id text;
ALTER TABLE demo_raw.otel_spans ADD COLUMN IF NOT EXISTS end_time timestamptz;
CREATE INDEX IF NOT EXISTS otel_spans_ts_id ON demo_raw.otel_spans (start_time, span_id);

-- name: reset_demo
TRUNCATE demo_raw.openai_chat_logs, demo_raw.otel_spans;
DELETE FROM assay.llm_logs;
DELETE FROM assay.scores WHERE deployment IN ('support-bot', 'search-rag', 'agent-otel');
DELETE FROM assay.quarantine WHERE deployment IN ('support-bot', 'search-rag', 'agent-otel');
DELETE FROM assay.watermarks WHERE deployment IN ('support-bot', 'search-rag', 'agent-otel');
DELETE FROM assay.unit_evaluations WHERE deployment IN ('support-bot', 'search-rag', 'agent-otel');
DELETE FROM assay.unit_score_revisions
WHERE deployment IN ('support-bot', 'search-rag', 'agent-otel');
DELETE FROM assay.eval_runs WHERE deployment IN ('support-bot', 'search-rag', 'agent-otel');

-- name: analyze_logs
ANALYZE assay.llm_logs

-- name: judged_logs
-- The demo's judged verdicts of one evaluator (the synthetic annotator labels some of them).
SELECT log_id, passed FROM assay.scores
WHERE deployment = :deployment AND evaluator = :evaluator AND status = 'ok'
  AND passed IS NOT NULL
ORDER BY log_id

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
-- Everything the demo fills, so a second `assay demo` starts from nothing: its raw tables and
-- logs, and every Assay table's rows of the demo deployments (found by their `deployment`
-- column, so a table added later is cleared too; queues take their items and annotators).
TRUNCATE demo_raw.openai_chat_logs, demo_raw.otel_spans;
DELETE FROM assay.llm_logs;
DO $$
DECLARE
    found record;
BEGIN
    FOR found IN
        SELECT c.table_name FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_schema, table_name)
        WHERE c.table_schema = 'assay' AND c.column_name = 'deployment'
          AND t.table_type = 'BASE TABLE'
        ORDER BY c.table_name
    LOOP
        EXECUTE 'DELETE FROM assay.' || quote_ident(found.table_name)
             || ' WHERE deployment IN (''support-bot'', ''search-rag'', ''agent-otel'')';
    END LOOP;
END
$$;

-- name: analyze_logs
ANALYZE assay.llm_logs

-- name: judged_logs
-- The demo's judged verdicts of one evaluator (the synthetic annotator labels some of them).
SELECT log_id, passed FROM assay.scores
WHERE deployment = :deployment AND evaluator = :evaluator AND status = 'ok'
  AND passed IS NOT NULL
ORDER BY log_id

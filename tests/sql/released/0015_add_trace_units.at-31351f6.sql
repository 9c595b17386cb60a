-- Agent traces as units of evaluation, and units evaluated again when turns arrive late.

-- The reference warehouse table gains the canonical columns of a trace's steps.
ALTER TABLE assay.llm_logs
    ADD COLUMN trace_id text,
    ADD COLUMN span_id text,
    ADD COLUMN parent_span_id text,
    ADD COLUMN step_kind text;
CREATE INDEX llm_logs_session_ts ON assay.llm_logs (session_id, ts) WHERE session_id IS NOT NULL;
CREATE INDEX llm_logs_trace_ts ON assay.llm_logs (trace_id, ts) WHERE trace_id IS NOT NULL;

-- A unit evaluated again (sessions.rescore_late) is a new revision of its evaluation: its
-- scores replace the earlier ones, which move to unit_score_revisions in the same transaction.
ALTER TABLE assay.scores ADD COLUMN unit_revision integer NOT NULL DEFAULT 1;
ALTER TABLE assay.unit_evaluations ADD COLUMN revision integer NOT NULL DEFAULT 1;
CREATE TABLE assay.unit_score_revisions (LIKE assay.scores INCLUDING DEFAULTS);
ALTER TABLE assay.unit_score_revisions ADD COLUMN superseded_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX unit_score_revisions_unit
    ON assay.unit_score_revisions (deployment, unit_kind, log_id);

-- A unit with no LLM call is skipped, with the reason.
ALTER TABLE assay.unit_evaluations DROP CONSTRAINT unit_evaluations_status_check;
ALTER TABLE assay.unit_evaluations ADD CONSTRAINT unit_evaluations_status_check
    CHECK (status IN ('evaluated', 'rejected', 'skipped'));

-- A unit that cannot be evaluated (a session mixing customers, a cycle in parent ids, a trace
-- over the step limit) is quarantined beside the logs, as `session:ID` or `trace:ID`.
ALTER TABLE assay.quarantine DROP CONSTRAINT quarantine_stage_check;
ALTER TABLE assay.quarantine ADD CONSTRAINT quarantine_stage_check
    CHECK (stage IN ('normalize', 'validate', 'unit'));

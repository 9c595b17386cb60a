-- The value and sample size an alert opened with, so reminders and summaries can show the
-- current value beside it (a pass rate now, and when the alert opened).
ALTER TABLE assay.alerts ADD COLUMN opened_value double precision;
ALTER TABLE assay.alerts ADD COLUMN opened_n integer;
UPDATE assay.alerts SET opened_value = value, opened_n = n WHERE opened_value IS NULL;

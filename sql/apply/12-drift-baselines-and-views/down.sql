-- KB-7D57 step 12 rollback: "drop baseline rows" — and the views and functions this step made.
DROP VIEW IF EXISTS v_permit_summary;
DROP VIEW IF EXISTS v_permit_stuck;
DROP VIEW IF EXISTS v_permit_active;
DROP FUNCTION IF EXISTS fn_drift_capture_baseline(text);
DROP FUNCTION IF EXISTS fn_drift_snapshot();
DROP TABLE IF EXISTS birth_drift_baseline;

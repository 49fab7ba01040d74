-- KB-7D57 step 12: capture drift baselines (doc 09) and the 3 read-only permit views (doc 07).
-- KB-3A66 §8: the drift monitor is DETECT_ONLY + fail-closed; a superuser can always bypass the gate
-- (KB-35E7 §4.6, workflow_admin is superuser), so what it can change — function bodies, trigger sets,
-- tgenabled — is fingerprinted here and compared by step 16.

CREATE TABLE birth_drift_baseline (
  baseline_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  baseline_set  text NOT NULL,          -- which capture: 'step-12', later re-captures by later steps
  kind          text NOT NULL CHECK (kind IN ('function', 'trigger_set', 'birth_bindings')),
  name          text NOT NULL,
  fingerprint   text NOT NULL,
  detail        jsonb,
  captured_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  captured_by   text NOT NULL DEFAULT session_user,
  CONSTRAINT birth_drift_baseline_uq UNIQUE (baseline_set, kind, name)
);

-- What the drift watch fingerprints now: the governed functions (md5 of pg_get_functiondef + OID),
-- the full trigger set (name, function, tgenabled) of every table a governed trigger sits on, and
-- the number of fn_birth_registry_auto bindings (KB-7D57 "166 trigger bindings intact").
CREATE FUNCTION fn_drift_snapshot()
RETURNS TABLE (kind text, name text, fingerprint text, detail jsonb)
LANGUAGE sql STABLE
SET search_path = public, pg_temp
AS $$
  WITH governed_fn AS (
    SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'public'
       AND p.proname IN ('fn_birth_registry_auto', 'fn_birth_registry_auto_id', 'fn_birth_gate', 'fn_pre_birth_check',
                         'fn_dot_tools_permit_gate', 'fn_dt_finalize', 'fn_admission_precheck', 'fn_family_flag',
                         'fn_permit_move', 'fn_permit_transition', 'fn_permit_request', 'fn_permit_issue', 'fn_permit_expire_due',
                         'fn_admission_insert_dot_tools', 'fn_family_code_rule', 'fn_break_glass_open', 'fn_birth_retire')
  ), governed_tables AS (
    SELECT DISTINCT t.tgrelid FROM pg_trigger t
     WHERE NOT t.tgisinternal AND t.tgfoid IN (SELECT oid FROM governed_fn)
  )
  SELECT 'function', p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid)),
         jsonb_build_object('oid', p.oid::bigint, 'security_definer', p.prosecdef)
    FROM pg_proc p WHERE p.oid IN (SELECT oid FROM governed_fn)
  UNION ALL
  SELECT 'trigger_set', g.tgrelid::regclass::text,
         md5(string_agg(format('%s:%s:%s', t.tgname, t.tgfoid::regproc, t.tgenabled), ',' ORDER BY t.tgname)),
         jsonb_agg(jsonb_build_object('trigger', t.tgname, 'function', t.tgfoid::regproc::text, 'enabled', t.tgenabled)
                   ORDER BY t.tgname)
    FROM governed_tables g JOIN pg_trigger t ON t.tgrelid = g.tgrelid AND NOT t.tgisinternal
   GROUP BY g.tgrelid
  UNION ALL
  SELECT 'birth_bindings', 'fn_birth_registry_auto', count(*)::text,
         jsonb_build_object('enabled_always', count(*) FILTER (WHERE t.tgenabled = 'A'),
                            'enabled_origin', count(*) FILTER (WHERE t.tgenabled = 'O'),
                            'disabled', count(*) FILTER (WHERE t.tgenabled = 'D'))
    FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgfoid = to_regproc('public.fn_birth_registry_auto')
$$;

-- A capture is a named set; the drift watch compares against the newest set, and a later step that
-- legitimately changes a governed function captures its own set (and deletes it on rollback).
CREATE FUNCTION fn_drift_capture_baseline(p_set text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_n integer;
BEGIN
  PERFORM fn_admission_require_text('baseline_set', p_set, 200);
  DELETE FROM birth_drift_baseline WHERE baseline_set = p_set;
  INSERT INTO birth_drift_baseline (baseline_set, kind, name, fingerprint, detail)
  SELECT p_set, s.kind, s.name, s.fingerprint, s.detail FROM fn_drift_snapshot() s;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END;
$$;

REVOKE ALL ON FUNCTION fn_drift_capture_baseline(text) FROM PUBLIC;
REVOKE ALL ON TABLE birth_drift_baseline FROM PUBLIC;

SELECT fn_drift_capture_baseline('step-12');

-- doc 07: the 3 read-only permit views (the worker reads these, never the table).
CREATE VIEW v_permit_active AS
SELECT p.permit_id, p.entity_code, p.collection_name, p.state, p.expires_at,
       p.expires_at < clock_timestamp() AS overdue,
       p.workflow_id, p.run_id, p.row_id, p.break_glass, p.requested_by, p.created_at, p.updated_at
  FROM birth_admission_permit p
 WHERE p.state IN ('REQUESTED', 'RESERVED', 'CONSUMED');

-- Stuck: every REQUESTED permit, whatever its placeholder expires_at — only fn_permit_request leaves
-- one behind (fn_permit_issue reserves in the same transaction), and the admission workflow calls it
-- for a stuck birth parked for an operator — and RESERVED/CONSUMED still live past their TTL (the
-- sweep has not run, or a CONSUMED permit never finalized). overdue_by is NULL while not overdue.
CREATE VIEW v_permit_stuck AS
SELECT p.permit_id, p.entity_code, p.collection_name, p.state, p.expires_at,
       CASE WHEN p.expires_at < clock_timestamp() THEN clock_timestamp() - p.expires_at END AS overdue_by,
       p.workflow_id, p.run_id, p.row_id, p.updated_at
  FROM birth_admission_permit p
 WHERE p.state = 'REQUESTED'
    OR (p.state IN ('RESERVED', 'CONSUMED') AND p.expires_at < clock_timestamp());

CREATE VIEW v_permit_summary AS
SELECT p.collection_name, p.state, count(*) AS permits,
       count(*) FILTER (WHERE p.break_glass) AS break_glass,
       min(p.created_at) AS oldest, max(p.updated_at) AS latest
  FROM birth_admission_permit p
 GROUP BY p.collection_name, p.state;

REVOKE ALL ON v_permit_active, v_permit_stuck, v_permit_summary FROM PUBLIC;

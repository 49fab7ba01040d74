-- KB-7D57 step 9 holds: the gate (BEFORE INSERT, sorting after code generation), the consume (AFTER
-- INSERT) and the row guards (AFTER UPDATE, BEFORE DELETE, BEFORE TRUNCATE) on dot_tools, each
-- ENABLE ALWAYS (tgenabled = 'A') and calling its birthgate_owner function; the family table exists.
WITH want(tgname, fn, timing_before, ev) AS (VALUES
  ('trg_permit_gate_dot_tools', 'fn_dot_tools_permit_gate', true, 4),
  ('trg_dt_consume', 'fn_dot_tools_permit_consume', false, 4),
  ('trg_permit_guard_dot_tools', 'fn_dot_tools_row_guard', false, 16),
  ('trg_permit_guard_delete_dot_tools', 'fn_dot_tools_row_guard', true, 8),
  ('trg_permit_guard_truncate_dot_tools', 'fn_dot_tools_row_guard', true, 32)
), have AS (
  SELECT w.tgname, t.oid IS NOT NULL AS present,
         coalesce(t.tgenabled = 'A' AND p.proname = w.fn AND ((t.tgtype & 2) <> 0) = w.timing_before
                  AND (t.tgtype & w.ev) <> 0 AND pg_catalog.pg_get_userbyid(p.proowner) = 'birthgate_owner', false) AS ok,
         t.tgenabled
    FROM want w
    LEFT JOIN pg_catalog.pg_trigger t ON t.tgrelid = 'public.dot_tools'::regclass AND t.tgname = w.tgname
    LEFT JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
)
SELECT bool_and(ok) AND 'trg_permit_gate_dot_tools' > 'trg_before_birth_gate_dot_tools'
       AND to_regclass('public.birth_admission_family') IS NOT NULL AS ok,
       string_agg(format('%s present=%s ok=%s enabled=%s', tgname, present, ok, coalesce(tgenabled::text, '-')), '; ') AS detail
  FROM have;

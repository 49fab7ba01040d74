-- Rollback of step 16: unplug the estate mirror, drop the dims, the drift check and the preflight; the
-- event triggers go back to their entry state (the estate's DDL guard: enabled, origin). The DDL ledger
-- and the switch log are history: they move to a schema birthgate_archive_<timestamp>.
SELECT set_config('role', pg_catalog.pg_get_userbyid(c.relowner)::text, true) FROM pg_catalog.pg_class c
 WHERE c.oid = 'public.dot_block_dim_source'::regclass;  -- written as its owner (SECURITY.md)
DELETE FROM public.dot_action_block_policy WHERE action = 'birth_admit' AND dim = 'gate_drift';
DELETE FROM public.dot_block_dim_source WHERE dim = 'gate_drift';
RESET ROLE;
DROP EVENT TRIGGER IF EXISTS trg_birthgate_ddl_ledger;
DROP EVENT TRIGGER IF EXISTS trg_birthgate_drop_ledger;
ALTER EVENT TRIGGER trg_guard_trigger_ddl ENABLE;
ALTER EVENT TRIGGER trg_guard_trigger_drop ENABLE;
DROP FUNCTION IF EXISTS public.fn_admission_open(text, text, text, integer, text, text, text);
DROP FUNCTION IF EXISTS public.fn_admission_preflight(text, text);
DROP FUNCTION IF EXISTS public.fn_admission_assert_safe(text);
DROP FUNCTION IF EXISTS public.fn_admission_halt(text, boolean, text, text);
DROP FUNCTION IF EXISTS public.fn_drift_rebaseline(text, text, text);
DROP FUNCTION IF EXISTS public.fn_drift_tick();
DROP FUNCTION IF EXISTS public.fn_admission_dims_recent();
DROP FUNCTION IF EXISTS public.fn_admission_dims();
DROP TABLE IF EXISTS public.birth_admission_dim;
DROP FUNCTION IF EXISTS public.fn_admission_dim_changed();
-- The preflight's reuse of the dims ends with this step: the guard keeps only what step 9 reads.
UPDATE public.birth_admission_guard g SET dims = NULL, ddl_seen = NULL WHERE g.singleton;
DROP FUNCTION IF EXISTS public.fn_gate_drift_dim();
DROP VIEW IF EXISTS public.v_gate_drift;
DROP FUNCTION IF EXISTS public.fn_drift_check();
DROP FUNCTION IF EXISTS public.fn_dim_permit_log_mismatch();
DROP FUNCTION IF EXISTS public.fn_dim_registry_coverage();
DROP FUNCTION IF EXISTS public.fn_registry_coverage();
DROP FUNCTION IF EXISTS public.fn_dim_unlinked_births();
DROP FUNCTION IF EXISTS public.fn_dim_ungated_rows();
DROP FUNCTION IF EXISTS public.fn_birthgate_drop_record();
DROP FUNCTION IF EXISTS public.fn_birthgate_ddl_record();
DROP FUNCTION IF EXISTS public.fn_ddl_ledger_record(text, text, text, text);
DO $$
DECLARE
  -- One archive schema per rollback: the tables keep their names (and their indexes, sequences and
  -- constraints theirs), so later archives never collide.
  v_schema text := 'birthgate_archive_' || to_char(clock_timestamp(), 'YYYYMMDD"_"HH24MISS"_"US');
  v_table text;
BEGIN
  FOREACH v_table IN ARRAY ARRAY['birth_ddl_ledger', 'birth_admission_switch_log'] LOOP
    IF to_regclass(format('public.%I', v_table)) IS NOT NULL THEN
      EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', v_schema);
      EXECUTE format('ALTER TABLE public.%I SET SCHEMA %I', v_table, v_schema);
    END IF;
  END LOOP;
  IF to_regnamespace(v_schema) IS NOT NULL THEN
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', v_schema);
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_owner') THEN
      EXECUTE format('ALTER SCHEMA %I OWNER TO birthgate_owner', v_schema);
    END IF;
  END IF;
END
$$;

SELECT public.fn_drift_capture_step('step-16-down');

-- KB-7D57 step 12 rollback: "drop baseline rows" — and the views and functions this step made. The
-- baselines and their rebaseline log are history: they move to a schema birthgate_archive_<timestamp>
-- instead of being dropped (as the permit ledger does in step 1's rollback).
DROP VIEW IF EXISTS public.v_permit_summary;
DROP VIEW IF EXISTS public.v_permit_stuck;
DROP VIEW IF EXISTS public.v_permit_active;
DROP FUNCTION IF EXISTS public.fn_drift_capture_step(text);
DROP FUNCTION IF EXISTS public.fn_drift_capture_baseline(text, text, text, text);
DROP FUNCTION IF EXISTS public.fn_drift_snapshot();
DROP FUNCTION IF EXISTS public.fn_drift_control_policy();
DO $$
DECLARE
  -- One archive schema per rollback: the tables keep their names (and their indexes, sequences and
  -- constraints theirs), so later archives never collide.
  v_schema text := 'birthgate_archive_' || to_char(clock_timestamp(), 'YYYYMMDD"_"HH24MISS"_"US');
  v_table text;
BEGIN
  FOREACH v_table IN ARRAY ARRAY['birth_drift_baseline', 'birth_drift_rebaseline'] LOOP
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
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_owner') THEN
    REVOKE ALL ON public.dot_config, public.registry_changelog, public.dot_block_dim_source, public.dot_action_block_policy
      FROM birthgate_owner;
  END IF;
END
$$;
DROP FUNCTION IF EXISTS public.fn_drift_baseline_append_only() CASCADE;

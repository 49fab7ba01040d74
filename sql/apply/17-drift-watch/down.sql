-- Rollback of step 17: the ticks' functions go (the Schedules' ticks then fail until the step is
-- applied again; the drift dims and the TTL sweep of step 16 and step 1 stay). The findings and the
-- watch's row are history: they move to a schema birthgate_archive_<timestamp>, like the DDL ledger in
-- step 16's rollback.
DROP FUNCTION IF EXISTS public.fn_permit_reconcile_closed(bigint, text, text, text, timestamptz, text);
DROP FUNCTION IF EXISTS public.fn_drift_accept(text, text, text);
DROP FUNCTION IF EXISTS public.fn_drift_watch_tick(text);
DROP FUNCTION IF EXISTS public.fn_drift_watch_record(text, text);
DO $$
DECLARE
  -- One archive schema per rollback: the tables keep their names (and their indexes, sequences and
  -- constraints theirs), so later archives never collide.
  v_schema text := 'birthgate_archive_' || to_char(clock_timestamp(), 'YYYYMMDD"_"HH24MISS"_"US');
  v_table text;
BEGIN
  FOREACH v_table IN ARRAY ARRAY['birth_drift_finding', 'birth_drift_watch'] LOOP
    IF to_regclass(format('public.%I', v_table)) IS NOT NULL THEN
      -- The operators' read right stays behind: an archive is the owner's.
      IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_operator') THEN
        EXECUTE format('REVOKE ALL ON public.%I FROM birthgate_operator', v_table);
      END IF;
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

SELECT public.fn_drift_capture_step('step-17-down');

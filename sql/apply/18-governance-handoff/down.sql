-- Rollback of step 18: the handoff's functions go, and so do the rights the step gave birthgate_owner
-- on the estate's governance tables. What the handoff wrote there (dirty candidates, captured or
-- emitted events, an activated event type) is the estate's data now and stays. The cursor, its gaps
-- and the batch history are history: they move to a schema birthgate_archive_<timestamp> (as step 16's
-- DDL ledger), so a later apply starts a fresh tail and the old one can still be read.
DROP FUNCTION IF EXISTS public.fn_governance_handoff_batch(text, integer, text);
DROP FUNCTION IF EXISTS public.fn_handoff_births(integer, boolean, text, timestamptz);
DROP FUNCTION IF EXISTS public.fn_handoff_changelog(integer, boolean, text, timestamptz);
DROP FUNCTION IF EXISTS public.fn_handoff_advance(text, bigint[], bigint[], integer, xid8, xid8, integer, integer, integer, boolean, text, timestamptz);
DROP FUNCTION IF EXISTS public.fn_handoff_estate_check(regclass[], regclass[]);
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_owner') THEN
    REVOKE SELECT, INSERT, UPDATE ON public.governance_candidate_state FROM birthgate_owner;
    REVOKE SELECT, INSERT, UPDATE ON public.event_pending FROM birthgate_owner;
    REVOKE SELECT, UPDATE ON public.event_type_registry FROM birthgate_owner;
    REVOKE SELECT ON public.governance_build_authorization FROM birthgate_owner;
  END IF;
END
$$;
DO $$
DECLARE
  -- One archive schema per rollback: the tables keep their names (and their indexes, sequences and
  -- constraints theirs), so later archives never collide.
  v_schema text := 'birthgate_archive_' || to_char(clock_timestamp(), 'YYYYMMDD"_"HH24MISS"_"US');
  v_table text;
BEGIN
  FOREACH v_table IN ARRAY ARRAY['birth_handoff_cursor', 'birth_handoff_gap', 'birth_handoff_batch'] LOOP
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

SELECT public.fn_drift_capture_step('step-18-down');

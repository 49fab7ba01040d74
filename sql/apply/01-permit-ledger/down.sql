-- KB-7D57 step 1 rollback: "DROP TABLE birth_admission_permit;" — plus what step 1 created with it.
-- The ledger is history (who was admitted, when, under which permit): the rollback keeps it. Its two
-- tables move to a schema birthgate_archive_<timestamp> instead of being dropped, so public
-- is back to the entry state and the record survives (SECURITY.md, issue 7 hole 10).
DROP FUNCTION IF EXISTS public.fn_admission_state(bigint);
DROP FUNCTION IF EXISTS public.fn_permit_expire_due(text);
DROP FUNCTION IF EXISTS public.fn_permit_issue(text, text, text, integer, text, text, text);
DROP FUNCTION IF EXISTS public.fn_permit_request(text, text, text, integer, text, text, text);
DROP FUNCTION IF EXISTS public.fn_permit_open(text, text, text, integer, text, text, text, boolean);
DROP FUNCTION IF EXISTS public.fn_permit_withdraw(bigint, text, text, text);
DROP FUNCTION IF EXISTS public.fn_permit_transition(bigint, text, text, text);
DROP FUNCTION IF EXISTS public.fn_permit_move(bigint, text, text, text, bigint, bigint);
DROP FUNCTION IF EXISTS public.fn_permit_require_params(text, integer, text, text, text);
DROP FUNCTION IF EXISTS public.fn_admission_require_collection(text);
DROP FUNCTION IF EXISTS public.fn_admission_require_text(text, text, integer, boolean);

DO $$
DECLARE
  -- One archive schema per rollback: the tables keep their names (and their indexes, sequences and
  -- constraints theirs), so later archives never collide.
  v_schema text := 'birthgate_archive_' || to_char(clock_timestamp(), 'YYYYMMDD"_"HH24MISS"_"US');
  v_table text;
BEGIN
  FOREACH v_table IN ARRAY ARRAY['birth_admission_permit_transition', 'birth_admission_permit'] LOOP
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
    REVOKE ALL ON public.meta_catalog, public.birth_registry, public.dot_tools FROM birthgate_owner;
  END IF;
END
$$;

-- Rollback of step 14. Retired births keep status 'retired' (a plain value once the CHECK is gone).
-- The status transition log is history: it moves to a schema birthgate_archive_<timestamp> (as the
-- permit ledger in step 1's rollback). fn_birth_phantoms gets its entry body back.
DROP FUNCTION IF EXISTS public.fn_admission_rollback(bigint, text, text);
DROP FUNCTION IF EXISTS public.fn_admission_rollback_complete(bigint, text, text);
DROP FUNCTION IF EXISTS public.fn_admission_rollback_authorize(bigint, text, text);
DROP FUNCTION IF EXISTS public.fn_birth_retire(text, text, text, text);
DROP FUNCTION IF EXISTS public.fn_birth_retire_checked(bigint, text, text);
DO $$
DECLARE
  -- One archive schema per rollback: the tables keep their names (and their indexes, sequences and
  -- constraints theirs), so later archives never collide.
  v_schema text := 'birthgate_archive_' || to_char(clock_timestamp(), 'YYYYMMDD"_"HH24MISS"_"US');
  v_table text;
BEGIN
  FOREACH v_table IN ARRAY ARRAY['birth_status_transition'] LOOP
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
ALTER TABLE public.birth_registry DROP CONSTRAINT IF EXISTS birth_registry_status_check;

CREATE OR REPLACE FUNCTION public.fn_birth_phantoms()
RETURNS TABLE (collection_name text, entity_code text, birth_id bigint, synthetic boolean)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  m      record;
  v_code text;
BEGIN
  FOR m IN SELECT mc.collection_name, mc.code_field, mc.id_field
             FROM meta_catalog mc
            WHERE to_regclass(quote_ident(mc.collection_name)) IS NOT NULL
            ORDER BY mc.collection_name
  LOOP
    v_code := _fn_collection_code_expr(m.collection_name, m.code_field, m.id_field);
    RETURN QUERY EXECUTE format(
      'SELECT b.collection_name::text, b.entity_code::text, b.id, coalesce(b.jsonb_profile ->> ''synthetic'' = ''true'', false)
         FROM birth_registry b
        WHERE b.collection_name = %L
          AND NOT EXISTS (SELECT 1 FROM %I t WHERE %s = b.entity_code)',
      m.collection_name, m.collection_name, v_code);
  END LOOP;
  RETURN QUERY
    SELECT b.collection_name::text, b.entity_code::text, b.id, coalesce(b.jsonb_profile ->> 'synthetic' = 'true', false)
      FROM birth_registry b
     WHERE NOT EXISTS (SELECT 1 FROM meta_catalog mc
                        WHERE mc.collection_name = b.collection_name
                          AND to_regclass(quote_ident(mc.collection_name)) IS NOT NULL);
END
$fn$;

SELECT public.fn_drift_capture_step('step-14-down');

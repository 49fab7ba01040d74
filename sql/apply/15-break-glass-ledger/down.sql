-- Rollback of step 15: the step-13 precheck body and the ledger's function. The ledger is history: it
-- moves to a schema birthgate_archive_<timestamp> (as the permit ledger in step 1's
-- rollback). Permits keep their break_glass flag and id.
CREATE OR REPLACE FUNCTION public.fn_admission_precheck(p_collection_name text, p_entity_code text, p_break_glass_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_guard public.birth_admission_guard;
BEGIN
  IF p_entity_code IS NULL OR btrim(p_entity_code) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('%s insert refused: the row has no code, so no birth permit can match it', p_collection_name);
  END IF;
  IF public.fn_family_flag(p_collection_name, 'admission_halted') THEN
    RAISE EXCEPTION USING ERRCODE = 'BG423',
      MESSAGE = format('%s insert of %s refused: admissions of this family are halted (kill switch)', p_collection_name,
                       left(p_entity_code, 80)),
      HINT = 'an operator lifts the kill switch with fn_admission_family_set; no break-glass overrides it';
  END IF;
  SELECT * INTO v_guard FROM public.birth_admission_guard g;
  IF NOT FOUND OR v_guard.findings > 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG423',
      MESSAGE = format('%s insert of %s refused: gate_drift=%s (%s)', p_collection_name, left(p_entity_code, 80),
                       coalesce(v_guard.findings::text, 'not computed'), left(coalesce(v_guard.detail, 'guard row missing'), 300)),
      HINT = 'the drift watch saw the gate changed; an owner-approved rebaseline or a repair clears it; no break-glass overrides it';
  END IF;
  IF NOT public.fn_family_code_rule(p_collection_name, p_entity_code) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('%s insert of %s refused: the code does not match the family code rule %s', p_collection_name,
                       left(p_entity_code, 80),
                       coalesce((SELECT mc.code_pattern::text FROM public.meta_catalog mc WHERE mc.collection_name = p_collection_name),
                                '^[A-Z]+-[0-9]+$')),
      HINT = 'meta_catalog.code_pattern holds the rule; an operator break-glass admits an exception';
  END IF;
END;
$$;

DROP FUNCTION IF EXISTS public.fn_break_glass_open(text, text, text, text, text, bigint, text);
DO $$
DECLARE
  -- One archive schema per rollback: the tables keep their names (and their indexes, sequences and
  -- constraints theirs), so later archives never collide.
  v_schema text := 'birthgate_archive_' || to_char(clock_timestamp(), 'YYYYMMDD"_"HH24MISS"_"US');
  v_table text;
BEGIN
  FOREACH v_table IN ARRAY ARRAY['birth_break_glass'] LOOP
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

SELECT public.fn_drift_capture_step('step-15-down');

-- Rollback of step 13: entry body of fn_pre_birth_check (byte for byte, sql/baseline/20-fn-pre-birth-check.sql),
-- step-9 body of fn_admission_precheck, the coverage objects, the column, and this step's baseline set.
CREATE OR REPLACE FUNCTION public.fn_pre_birth_check(p_collection text, p_code text, p_name text DEFAULT NULL,
                                   p_dot_origin text DEFAULT NULL)
RETURNS TABLE (check_no integer, check_name text, detail text)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  v_managed    boolean;
  v_name_field text;
  v_taken      boolean;
  v_born_in    text;
BEGIN
  SELECT mc.managed, mc.name_field INTO v_managed, v_name_field
    FROM meta_catalog mc WHERE mc.collection_name = p_collection;

  -- (1) collection in meta_catalog, managed
  IF NOT coalesce(v_managed, false) THEN
    check_no := 1; check_name := 'collection_managed';
    detail := format('collection %s is not managed in meta_catalog', p_collection);
    RETURN NEXT;
  END IF;

  -- (2) _dot_origin non-empty
  IF p_dot_origin IS NULL OR btrim(p_dot_origin) = '' THEN
    check_no := 2; check_name := 'dot_origin_present';
    detail := '_dot_origin is empty';
    RETURN NEXT;
  END IF;

  -- (3) code format, hardcoded
  IF p_code IS NULL OR p_code !~ '^[A-Z]+-[0-9]+$' THEN
    check_no := 3; check_name := 'code_format';
    detail := format('code %s does not match ^[A-Z]+-[0-9]+$', coalesce(p_code, '<null>'));
    RETURN NEXT;
  END IF;

  -- (4) name uniqueness within the collection
  IF p_name IS NOT NULL AND v_name_field IS NOT NULL AND to_regclass(quote_ident(p_collection)) IS NOT NULL THEN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I = $1)', p_collection, v_name_field)
      INTO v_taken USING p_name;
    IF v_taken THEN
      check_no := 4; check_name := 'name_unique';
      detail := format('name %s already exists in %s', p_name, p_collection);
      RETURN NEXT;
    END IF;
  END IF;

  -- (5) code uniqueness across the registry
  SELECT br.collection_name INTO v_born_in FROM birth_registry br WHERE br.entity_code = p_code;
  IF FOUND THEN
    check_no := 5; check_name := 'code_unique';
    detail := format('code %s is already born in %s', p_code, v_born_in);
    RETURN NEXT;
  END IF;
END
$fn$;

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
END;
$$;

DROP VIEW IF EXISTS public.v_birth_code_rule_coverage;
DROP FUNCTION IF EXISTS public.fn_birth_code_rule_coverage();
DROP FUNCTION IF EXISTS public.fn_family_code_rule(text, text);
ALTER TABLE public.meta_catalog DROP COLUMN IF EXISTS code_pattern;

-- The entry body carries no SET clause; step 9 pinned it, so pin it again while step 9 holds.
DO $$
BEGIN
  IF to_regclass('public.birth_admission_pinned') IS NOT NULL
     AND EXISTS (SELECT 1 FROM public.birth_admission_pinned p
                  WHERE p.fn = to_regprocedure('public.fn_pre_birth_check(text,text,text,text)')) THEN
    ALTER FUNCTION public.fn_pre_birth_check(text, text, text, text) SET search_path = pg_catalog, public, pg_temp;
  END IF;
END
$$;

SELECT public.fn_drift_capture_step('step-13-down');

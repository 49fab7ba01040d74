-- KB-4410 §D.4 / KB-7D57 owner checklist: a registry-driven, per-family code rule replaces the
-- hardcoded ^[A-Z]+-[0-9]+$ of fn_pre_birth_check check (3), which rejects 100% of entity_species
-- and ~47% of dot_tools (KB-35E7 §4.4). The rule is data in meta_catalog; coverage is a view that
-- says STOP for any family whose registered rule does not fit its own rows.

-- Nullable, no default: a catalog-only change, no table rewrite.
ALTER TABLE public.meta_catalog ADD COLUMN code_pattern varchar;

-- dot_tools: generated codes (DOT-nnn, gen_code_dot_tools) and hand-written kebab-case DOT codes.
-- SECURITY.md: an estate table is written as its owner, so triggers the owner put on it never run
-- with the applying superuser's rights.
SELECT set_config('role', pg_catalog.pg_get_userbyid(c.relowner)::text, true) FROM pg_catalog.pg_class c
 WHERE c.oid = 'public.meta_catalog'::regclass;
UPDATE public.meta_catalog SET code_pattern = '^(DOT-[0-9]{3,}|[a-z][a-z0-9]*(-[a-z0-9]+)+)$'
 WHERE collection_name = 'dot_tools';
RESET ROLE;

-- Does p_code satisfy its family's rule? The registered pattern, else the entry rule.
-- plpgsql, not sql: with its SET clause a SQL function is never inlined, and PostgreSQL 16 then
-- parses and plans it on every call (the gate calls it on every insert); plpgsql keeps the plan.
CREATE FUNCTION public.fn_family_code_rule(p_collection_name text, p_entity_code text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
BEGIN
  RETURN p_entity_code ~ coalesce((SELECT mc.code_pattern::text FROM public.meta_catalog mc
                                    WHERE mc.collection_name = p_collection_name), '^[A-Z]+-[0-9]+$');
END;
$$;

-- Registry-driven coverage: every managed code-keyed family, its effective rule, how many of its
-- rows fail it. STOP-on-mismatch: a family with failing rows must not be enforced until fixed.
-- SECURITY INVOKER (SECURITY.md): it reads every code-keyed family, which birthgate_owner has no right
-- to; the operator or owner who asks reads with their own rights.
CREATE FUNCTION public.fn_birth_code_rule_coverage()
RETURNS TABLE (collection_name text, code_pattern text, rule_source text, row_count bigint, failing bigint,
               sample_failing text, status text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m record;
BEGIN
  FOR m IN SELECT mc.collection_name::text AS coll, mc.code_field::text AS field, mc.code_pattern::text AS pat
             FROM public.meta_catalog mc
            WHERE mc.managed AND mc.birth_mode = 'code' AND mc.code_field IS NOT NULL
              AND to_regclass(format('public.%I', mc.collection_name)) IS NOT NULL
            ORDER BY mc.collection_name
  LOOP
    RETURN QUERY EXECUTE format(
      'SELECT %1$L::text, %2$L::text, %3$L::text, count(*), count(*) FILTER (WHERE NOT (t.%4$I::text ~ %2$L)),
              min(t.%4$I::text) FILTER (WHERE NOT (t.%4$I::text ~ %2$L)),
              CASE WHEN count(*) FILTER (WHERE NOT (t.%4$I::text ~ %2$L)) = 0 THEN ''OK'' ELSE ''STOP'' END
         FROM public.%5$I t WHERE t.%4$I IS NOT NULL',
      m.coll, coalesce(m.pat, '^[A-Z]+-[0-9]+$'), CASE WHEN m.pat IS NULL THEN 'entry-rule' ELSE 'registry' END,
      m.field, m.coll);
  END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION public.fn_birth_code_rule_coverage() FROM PUBLIC;

CREATE VIEW public.v_birth_code_rule_coverage AS SELECT * FROM public.fn_birth_code_rule_coverage();
REVOKE ALL ON public.v_birth_code_rule_coverage FROM PUBLIC;

-- The permit gate enforces the family rule (CONTRACT.md "Triggers on dot_tools"): the precheck of
-- step 9 gains it. Step 15 adds the break-glass exemption.
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

-- OID-stable body swap of fn_pre_birth_check (the advisory gate fn_birth_gate calls it): check (3)
-- reads meta_catalog.code_pattern. Rollback restores the entry body byte for byte.
CREATE OR REPLACE FUNCTION public.fn_pre_birth_check(p_collection text, p_code text, p_name text DEFAULT NULL,
                                   p_dot_origin text DEFAULT NULL)
RETURNS TABLE (check_no integer, check_name text, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
  v_managed    boolean;
  v_name_field text;
  v_taken      boolean;
  v_born_in    text;
  v_pattern    text;
BEGIN
  SELECT mc.managed, mc.name_field, coalesce(mc.code_pattern, '^[A-Z]+-[0-9]+$')
    INTO v_managed, v_name_field, v_pattern
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

  -- (3) code format, registry-driven: meta_catalog.code_pattern, the entry rule where none is registered
  IF p_code IS NULL OR p_code !~ coalesce(v_pattern, '^[A-Z]+-[0-9]+$') THEN
    check_no := 3; check_name := 'code_format';
    detail := format('code %s does not match %s', coalesce(p_code, '<null>'), coalesce(v_pattern, '^[A-Z]+-[0-9]+$'));
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

ALTER FUNCTION public.fn_family_code_rule(text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_birth_code_rule_coverage() OWNER TO birthgate_owner;
ALTER VIEW public.v_birth_code_rule_coverage OWNER TO birthgate_owner;
REVOKE ALL ON FUNCTION public.fn_family_code_rule(text, text) FROM PUBLIC;

-- Governed bodies changed legitimately: the drift watch compares against this capture from now on.
SELECT public.fn_drift_capture_step('step-13');

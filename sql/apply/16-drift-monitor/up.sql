-- KB-3A66 §8 / KB-4410 §D.6: the drift monitor, DETECT_ONLY + fail-closed through a new gate_drift
-- BLOCK dim. A superuser can always bypass the gate (workflow_admin is superuser, KB-35E7 §4.6);
-- comparing function md5s, trigger sets and tgenabled with the newest baseline turns that bypass from
-- invisible into loud, and the BLOCK dim stops further admissions until someone looks.

-- Differences between the newest baseline set (step 12, or a later legitimate re-capture) and now.
-- A governed trigger that is disabled is reported even if it was disabled at capture time.
CREATE FUNCTION fn_drift_check()
RETURNS TABLE (kind text, name text, expected text, actual text, drift text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
  WITH latest AS (
    SELECT b.baseline_set FROM birth_drift_baseline b ORDER BY b.baseline_id DESC LIMIT 1
  ), base AS (
    SELECT b.kind, b.name, b.fingerprint FROM birth_drift_baseline b JOIN latest l USING (baseline_set)
  ), now_ AS (
    SELECT s.kind, s.name, s.fingerprint, s.detail FROM fn_drift_snapshot() s
  )
  SELECT coalesce(b.kind, n.kind), coalesce(b.name, n.name), b.fingerprint, n.fingerprint,
         CASE WHEN n.name IS NULL THEN 'MISSING' WHEN b.name IS NULL THEN 'NEW' ELSE 'CHANGED' END
    FROM base b FULL JOIN now_ n ON n.kind = b.kind AND n.name = b.name
   WHERE b.fingerprint IS DISTINCT FROM n.fingerprint
  UNION ALL
  SELECT 'trigger', format('%s.%s', n.name, t ->> 'trigger'), 'enabled', t ->> 'enabled', 'DISABLED'
    FROM now_ n, jsonb_array_elements(n.detail) t
   WHERE n.kind = 'trigger_set' AND t ->> 'enabled' = 'D'
  UNION ALL
  SELECT 'baseline', 'birth_drift_baseline', 'a captured set', NULL, 'MISSING'
   WHERE NOT EXISTS (SELECT 1 FROM latest)
$$;
REVOKE ALL ON FUNCTION fn_drift_check() FROM PUBLIC;

CREATE VIEW v_gate_drift AS SELECT * FROM fn_drift_check();
REVOKE ALL ON v_gate_drift FROM PUBLIC;

-- The dim, in the shape dot_block_dim_source expects: () RETURNS TABLE (block_count, detail).
CREATE FUNCTION fn_gate_drift_dim()
RETURNS TABLE (block_count bigint, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
  SELECT count(*), coalesce(string_agg(format('%s %s %s', d.drift, d.kind, d.name), '; ' ORDER BY d.kind, d.name), 'none')
    FROM fn_drift_check() d
$$;

-- Plugged in as data, no body swap of fn_safety_block_dims (sql/baseline/50-safety-net.sql).
INSERT INTO dot_block_dim_source (dim, count_fn, description)
VALUES ('gate_drift', 'fn_gate_drift_dim', 'KB-3A66 §8: governed functions, trigger sets or tgenabled differ from the drift baseline');
INSERT INTO dot_action_block_policy (action, dim, note)
VALUES ('birth_admit', 'gate_drift', 'KB-3A66 §8: fail closed on gate drift');

-- The preflight as the worker may run it: fn_assert_safe_for_dot_action reads every collection with
-- its caller's rights, which the least-privilege worker does not have.
CREATE FUNCTION fn_admission_assert_safe(p_action text DEFAULT 'birth_admit')
RETURNS TABLE (dim text, block_count bigint, blocking boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
  PERFORM fn_admission_require_text('action', p_action, 200);
  RETURN QUERY SELECT a.dim, a.block_count, a.blocking FROM fn_assert_safe_for_dot_action(p_action) a;
END;
$$;
REVOKE ALL ON FUNCTION fn_admission_assert_safe(text) FROM PUBLIC;

-- DESIGN §4 step 1 "preflight — stop-conditions": every stop-condition of one admission in one read,
-- returned rather than raised so a parked workflow can show them (request of the admission workflow,
-- sql/apply/REQUEST-from-admission-workflow.md). An empty "blockers" list = clear to admit.
-- Kill switch: dot_config(<collection>, 'admission_halted') = true halts a family's admissions.
CREATE FUNCTION fn_admission_preflight(p_entity_code text, p_collection_name text)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  v_flag boolean;
  v_managed boolean;
  v_pattern text;
  v_rule_ok boolean;
  v_halted boolean;
  v_dims jsonb;
  v_all jsonb;
  v_src record;
  v_count bigint;
  v_detail text;
  v_blockers jsonb := '[]'::jsonb;
BEGIN
  PERFORM fn_admission_require_text('entity_code', p_entity_code, 200);
  PERFORM fn_admission_require_text('collection_name', p_collection_name, 200);
  SELECT mc.managed, mc.code_pattern INTO v_managed, v_pattern
    FROM meta_catalog mc WHERE mc.collection_name = p_collection_name;
  IF NOT FOUND OR to_regclass(format('public.%I', p_collection_name)) IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('collection %s is unknown or not managed in meta_catalog', left(p_collection_name, 80));
  END IF;
  v_flag := fn_family_flag(p_collection_name, 'birth_admission_required');
  v_halted := fn_family_flag(p_collection_name, 'admission_halted');
  v_rule_ok := fn_family_code_rule(p_collection_name, p_entity_code);

  -- The dims dot_action_block_policy maps to birth_admit. Plugged-in dims (gate_drift) are computed
  -- one by one; the built-in four only when the policy maps one of them, as they scan every collection.
  IF EXISTS (SELECT 1 FROM dot_action_block_policy bp
              WHERE bp.action = 'birth_admit'
                AND NOT EXISTS (SELECT 1 FROM dot_block_dim_source s WHERE s.dim = bp.dim)) THEN
    SELECT jsonb_agg(jsonb_build_object('dim', d.dim, 'count', d.block_count, 'detail', d.detail))
      INTO v_all FROM fn_safety_block_dims() d;
  ELSE
    FOR v_src IN SELECT s.dim, s.count_fn FROM dot_block_dim_source s
                   JOIN dot_action_block_policy bp ON bp.dim = s.dim AND bp.action = 'birth_admit' LOOP
      EXECUTE format('SELECT x.block_count::bigint, x.detail::text FROM %s() x', v_src.count_fn) INTO v_count, v_detail;
      v_all := coalesce(v_all, '[]'::jsonb) || jsonb_build_object('dim', v_src.dim, 'count', v_count, 'detail', v_detail);
    END LOOP;
  END IF;
  -- A mapped dim that nothing computed blocks too (fail closed, as fn_assert_safe_for_dot_action does).
  SELECT coalesce(jsonb_agg(jsonb_build_object('dim', bp.dim, 'count', (c ->> 'count')::bigint,
                                               'detail', coalesce(c ->> 'detail', 'not computed: fail closed'))
                            ORDER BY bp.dim), '[]'::jsonb)
    INTO v_dims
    FROM dot_action_block_policy bp
    LEFT JOIN jsonb_array_elements(coalesce(v_all, '[]'::jsonb)) c ON c ->> 'dim' = bp.dim
   WHERE bp.action = 'birth_admit' AND (c IS NULL OR (c ->> 'count')::bigint > 0);

  IF NOT v_managed THEN
    v_blockers := v_blockers || jsonb_build_object('kind', 'collection_unmanaged',
      'detail', format('meta_catalog does not manage %s', p_collection_name));
  END IF;
  IF NOT v_flag THEN
    v_blockers := v_blockers || jsonb_build_object('kind', 'family_flag_off',
      'detail', format('dot_config(%s, birth_admission_required) is not true', p_collection_name));
  END IF;
  IF NOT v_rule_ok THEN
    v_blockers := v_blockers || jsonb_build_object('kind', 'code_rule',
      'detail', format('code %s does not match %s', left(p_entity_code, 80), coalesce(v_pattern, '^[A-Z]+-[0-9]+$')));
  END IF;
  IF v_halted THEN
    v_blockers := v_blockers || jsonb_build_object('kind', 'kill_switch',
      'detail', format('dot_config(%s, admission_halted) is true', p_collection_name));
  END IF;
  v_blockers := v_blockers || coalesce((SELECT jsonb_agg(jsonb_build_object('kind', 'block_dim',
      'detail', format('%s=%s: %s', d ->> 'dim', coalesce(d ->> 'count', 'not computed'), d ->> 'detail')))
      FROM jsonb_array_elements(v_dims) d), '[]'::jsonb);

  RETURN jsonb_build_object(
    'family_flag', v_flag,
    'collection_managed', v_managed,
    'code_pattern', v_pattern,
    'code_rule_ok', v_rule_ok,
    'kill_switch', v_halted,
    'block_dims', v_dims,
    'blockers', v_blockers);
END;
$$;
REVOKE ALL ON FUNCTION fn_admission_preflight(text, text) FROM PUBLIC;

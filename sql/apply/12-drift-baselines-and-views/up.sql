-- KB-7D57 step 12: capture drift baselines (doc 09) and the 3 read-only permit views (doc 07).
-- KB-3A66 §8: the drift monitor is DETECT_ONLY + fail-closed; a superuser can always bypass the gate
-- (KB-35E7 §4.6, workflow_admin is superuser), so what it can change — function bodies, trigger sets,
-- tgenabled — is fingerprinted here and compared by step 16.

-- Baseline sets are append-only history: a set is written only by fn_drift_capture_baseline, which
-- logs who captured it, why and under which approval in birth_drift_rebaseline, in the same
-- transaction as its rows (SECURITY.md: "a new baseline set written directly" is a drift finding).
CREATE TABLE public.birth_drift_rebaseline (
  rebaseline_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  baseline_set  text NOT NULL UNIQUE,
  actor         text NOT NULL,          -- who approved (the owner, or the packet step)
  reason        text NOT NULL,
  approval_id   text NOT NULL,
  captured_by   text NOT NULL DEFAULT session_user,
  txid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
  captured_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE public.birth_drift_baseline (
  baseline_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  baseline_set  text NOT NULL REFERENCES public.birth_drift_rebaseline (baseline_set),
  kind          text NOT NULL CHECK (kind IN ('function', 'trigger_set', 'birth_bindings', 'relation', 'operators',
                                              'event_trigger', 'control')),
  name          text NOT NULL,
  fingerprint   text NOT NULL,
  detail        jsonb,
  captured_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  captured_by   text NOT NULL DEFAULT session_user,
  txid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
  CONSTRAINT birth_drift_baseline_uq UNIQUE (baseline_set, kind, name)
);

-- Append-only: no UPDATE, no DELETE, no TRUNCATE, for anyone (a superuser must disable this trigger
-- first, which the DDL ledger and the trigger-set fingerprint record).
CREATE FUNCTION public.fn_drift_baseline_append_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'BG403',
    MESSAGE = format('%s is append-only: %s refused', TG_TABLE_NAME, TG_OP),
    HINT = 'a new baseline is a new set, captured by fn_drift_rebaseline (owner-approved, logged)';
END;
$$;
CREATE TRIGGER trg_drift_baseline_append_only BEFORE UPDATE OR DELETE ON public.birth_drift_baseline
  FOR EACH ROW EXECUTE FUNCTION public.fn_drift_baseline_append_only();
CREATE TRIGGER trg_drift_baseline_no_truncate BEFORE TRUNCATE ON public.birth_drift_baseline
  FOR EACH STATEMENT EXECUTE FUNCTION public.fn_drift_baseline_append_only();
CREATE TRIGGER trg_drift_rebaseline_append_only BEFORE UPDATE OR DELETE ON public.birth_drift_rebaseline
  FOR EACH ROW EXECUTE FUNCTION public.fn_drift_baseline_append_only();
CREATE TRIGGER trg_drift_rebaseline_no_truncate BEFORE TRUNCATE ON public.birth_drift_rebaseline
  FOR EACH STATEMENT EXECUTE FUNCTION public.fn_drift_baseline_append_only();
ALTER TABLE public.birth_drift_baseline ENABLE ALWAYS TRIGGER trg_drift_baseline_append_only;
ALTER TABLE public.birth_drift_baseline ENABLE ALWAYS TRIGGER trg_drift_baseline_no_truncate;
ALTER TABLE public.birth_drift_rebaseline ENABLE ALWAYS TRIGGER trg_drift_rebaseline_append_only;
ALTER TABLE public.birth_drift_rebaseline ENABLE ALWAYS TRIGGER trg_drift_rebaseline_no_truncate;

-- The admission's BLOCK-dim policy and the digest of the entry state as text rows for the control
-- fingerprint; each read when its table exists (steps 11 and 16 create them).
CREATE FUNCTION public.fn_drift_control_policy()
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v jsonb;
  v_entry jsonb := '[]'::jsonb;
BEGIN
  -- The entry state of the flagged families (step 11): its size and digest, so a row whitelisted into
  -- it is a finding.
  IF to_regclass('public.birth_admission_entry') IS NOT NULL THEN
    EXECUTE $q$SELECT jsonb_build_array(format('entry:%s:%s', count(*),
                 md5(coalesce(string_agg(format('%s|%s|%s|%s', e.collection_name, e.kind, e.id, e.entity_code), ','
                                         ORDER BY e.collection_name, e.kind, e.id), ''))))
                 FROM public.birth_admission_entry e$q$ INTO v_entry;
  END IF;
  IF to_regclass('public.birth_admission_dim') IS NULL THEN
    RETURN v_entry;
  END IF;
  EXECUTE 'SELECT coalesce(jsonb_agg(format(''%s:%s:%s:%s'', d.dim, d.count_fn, d.hard, d.enabled) ORDER BY d.dim), ''[]'')
             FROM public.birth_admission_dim d' INTO v;
  RETURN v || v_entry;
END;
$$;

-- What the drift watch fingerprints (KB-3A66 §8, SECURITY.md):
--   function       every function that runs inside an admission or guards it: all of birthgate_owner's,
--                  every trigger function on a governed table, the estate's birth and check functions and
--                  the event-trigger functions — md5 of the definition (body, SET clauses, SECURITY
--                  DEFINER), owner and normalised ACL;
--   trigger_set    every table a governed function is bound to: names, functions, tgenabled;
--   birth_bindings the number of fn_birth_registry_auto triggers (KB-7D57 "166 bindings intact");
--   relation       the governed tables: kind, owner, ACL, row security, rules;
--   operators      every operator and cast not built in (a planted =(varchar,text) shows here);
--   event_trigger  each event trigger's event, function and enabled state (ENABLE ALWAYS expected);
--   control        the admission's switches and policy: families' required flag, their dot_config
--                  mirror, the admission's BLOCK dims.
CREATE FUNCTION public.fn_drift_snapshot()
RETURNS TABLE (kind text, name text, fingerprint text, detail jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
  WITH owner_role AS (
    SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = 'birthgate_owner'
  ), governed_rel AS (
    SELECT c.oid FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
       AND (c.relname IN ('dot_tools', 'birth_registry', 'meta_catalog', 'dot_config', 'registry_changelog',
                          'dot_block_dim_source', 'dot_action_block_policy')
            OR c.relowner IN (SELECT oid FROM owner_role))
  ), governed_fn AS (
    SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.proowner IN (SELECT oid FROM owner_role)
    UNION SELECT t.tgfoid FROM pg_catalog.pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT oid FROM governed_rel)
    UNION SELECT p.oid FROM pg_catalog.pg_proc p
           WHERE p.pronamespace = 'public'::regnamespace
             AND p.proname IN ('fn_birth_registry_auto', 'fn_birth_registry_auto_id', 'fn_birth_gate', 'fn_pre_birth_check',
                               'fn_assert_safe_for_dot_action', 'fn_safety_block_dims', 'fn_retire_gate_check', 'fn_birth_phantoms')
    UNION SELECT e.evtfoid FROM pg_catalog.pg_event_trigger e
  ), governed_tables AS (
    SELECT DISTINCT t.tgrelid FROM pg_catalog.pg_trigger t
     WHERE NOT t.tgisinternal AND (t.tgfoid IN (SELECT oid FROM governed_fn) OR t.tgrelid IN (SELECT oid FROM governed_rel))
  )
  -- xmin: a body swapped and restored, or an attribute changed and changed back, rewrites the catalog
  -- row even when the definition ends up equal (and even with the DDL ledger's event trigger off).
  SELECT 'function'::text, p.oid::regprocedure::text,
         md5(pg_catalog.pg_get_functiondef(p.oid) || '|' || p.xmin::text || '|' || pg_catalog.pg_get_userbyid(p.proowner) || '|' ||
             coalesce((SELECT string_agg(format('%s:%s:%s', x.grantee, x.privilege_type, x.is_grantable), ',' ORDER BY x.grantee, x.privilege_type)
                         FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x), '')),
         jsonb_build_object('oid', p.oid::bigint, 'security_definer', p.prosecdef, 'owner', pg_catalog.pg_get_userbyid(p.proowner),
                            'config', p.proconfig)
    FROM pg_catalog.pg_proc p WHERE p.oid IN (SELECT oid FROM governed_fn) AND p.prokind = 'f'
  UNION ALL
  SELECT 'trigger_set', g.tgrelid::regclass::text,
         md5(string_agg(format('%s:%s:%s:%s', t.tgname, t.tgfoid::regprocedure, t.tgenabled, t.xmin), ',' ORDER BY t.tgname)),
         jsonb_agg(jsonb_build_object('trigger', t.tgname, 'function', t.tgfoid::regproc::text, 'enabled', t.tgenabled)
                   ORDER BY t.tgname)
    FROM governed_tables g JOIN pg_catalog.pg_trigger t ON t.tgrelid = g.tgrelid AND NOT t.tgisinternal
   GROUP BY g.tgrelid
  UNION ALL
  SELECT 'birth_bindings', 'fn_birth_registry_auto', count(*)::text,
         jsonb_build_object('enabled_always', count(*) FILTER (WHERE t.tgenabled = 'A'),
                            'enabled_origin', count(*) FILTER (WHERE t.tgenabled = 'O'),
                            'disabled', count(*) FILTER (WHERE t.tgenabled = 'D'))
    FROM pg_catalog.pg_trigger t WHERE NOT t.tgisinternal AND t.tgfoid = to_regproc('public.fn_birth_registry_auto')
  UNION ALL
  SELECT 'relation', c.oid::regclass::text,
         md5(format('%s|%s|%s|%s|%s|%s|%s|%s', c.relkind, pg_catalog.pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity,
                    c.relhasrules,
                    -- indexes (an expression index runs its functions on every write) and column types
                    (SELECT string_agg(pg_catalog.pg_get_indexdef(i.indexrelid), ';' ORDER BY i.indexrelid::regclass::text)
                       FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid),
                    (SELECT string_agg(format('%s:%s', a.attname, a.atttypid::regtype), ',' ORDER BY a.attnum)
                       FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
                    coalesce((SELECT string_agg(format('%s:%s:%s', x.grantee, x.privilege_type, x.is_grantable), ',' ORDER BY x.grantee, x.privilege_type)
                                FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) x), ''))),
         jsonb_build_object('kind', c.relkind, 'owner', pg_catalog.pg_get_userbyid(c.relowner), 'row_security', c.relrowsecurity,
                            'rules', c.relhasrules)
    FROM pg_catalog.pg_class c WHERE c.oid IN (SELECT oid FROM governed_rel)
  UNION ALL
  SELECT 'operators', 'user-defined operators and casts',
         md5(coalesce((SELECT string_agg(format('%s=%s', o.oid::regoperator, o.oprcode), ',' ORDER BY o.oid::regoperator::text)
                         FROM pg_catalog.pg_operator o
                        WHERE o.oprnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)), '')
             || '|' ||
             coalesce((SELECT string_agg(format('%s->%s:%s:%s', k.castsource::regtype, k.casttarget::regtype, k.castfunc, k.castcontext), ','
                                         ORDER BY k.castsource, k.casttarget)
                         FROM pg_catalog.pg_cast k WHERE k.oid >= 16384), '')),
         jsonb_build_object('operators', (SELECT count(*) FROM pg_catalog.pg_operator o
                                           WHERE o.oprnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)),
                            'casts', (SELECT count(*) FROM pg_catalog.pg_cast k WHERE k.oid >= 16384))
  UNION ALL
  SELECT 'event_trigger', e.evtname::text, md5(format('%s|%s|%s|%s|%s', e.evtevent, e.evtfoid::regproc, e.evtenabled, e.evttags, e.xmin)),
         jsonb_build_object('event', e.evtevent, 'function', e.evtfoid::regproc::text, 'enabled', e.evtenabled)
    FROM pg_catalog.pg_event_trigger e
  UNION ALL
  SELECT 'control', 'admission switches and policy',
         md5(coalesce((SELECT string_agg(format('%s:%s', f.collection_name, f.required), ',' ORDER BY f.collection_name)
                         FROM public.birth_admission_family f), '')
             || '|' || coalesce((SELECT string_agg(format('%s:%s', c.collection_name, c.config_value), ',' ORDER BY c.collection_name)
                                   FROM public.dot_config c WHERE c.config_key = 'birth_admission_required'), '')
             || '|' || coalesce((SELECT string_agg(x.r, ',' ORDER BY x.r) FROM pg_catalog.jsonb_array_elements_text(
                                   coalesce(public.fn_drift_control_policy(), '[]'::jsonb)) x(r)), '')),
         jsonb_build_object('families', (SELECT jsonb_object_agg(f.collection_name, f.required) FROM public.birth_admission_family f))
$$;

-- A capture is a new, named, logged set; the drift watch compares with the newest logged set.
CREATE FUNCTION public.fn_drift_capture_baseline(p_set text, p_actor text, p_reason text, p_approval_id text)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n integer;
BEGIN
  PERFORM public.fn_admission_require_text('baseline_set', p_set, 200);
  PERFORM public.fn_admission_require_text('actor', p_actor, 200);
  PERFORM public.fn_admission_require_text('reason', p_reason, 2000, true);
  PERFORM public.fn_admission_require_text('approval_id', p_approval_id, 200);
  IF EXISTS (SELECT 1 FROM public.birth_drift_rebaseline r WHERE r.baseline_set = p_set) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG409', MESSAGE = format('baseline set %s already exists; sets are append-only', left(p_set, 80));
  END IF;
  INSERT INTO public.birth_drift_rebaseline (baseline_set, actor, reason, approval_id)
  VALUES (p_set, p_actor, p_reason, p_approval_id);
  INSERT INTO public.birth_drift_baseline (baseline_set, kind, name, fingerprint, detail)
  SELECT p_set, s.kind, s.name, s.fingerprint, s.detail FROM public.fn_drift_snapshot() s;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END;
$$;

-- The packet's own captures: one set per step, named after the step and the moment (a step applied,
-- rolled back and applied again captures each time; sets are never overwritten).
CREATE FUNCTION public.fn_drift_capture_step(p_step text)
RETURNS integer
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT public.fn_drift_capture_baseline(format('%s@%s', p_step, to_char(clock_timestamp(), 'YYYYMMDD"T"HH24MISS.US')),
                                          'apply packet', format('KB-7D57 %s changed governed objects', p_step), 'packet-runner')
$$;

REVOKE ALL ON FUNCTION public.fn_drift_capture_baseline(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_drift_capture_step(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_drift_snapshot() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_drift_control_policy() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_drift_baseline_append_only() FROM PUBLIC;
REVOKE ALL ON TABLE public.birth_drift_baseline, public.birth_drift_rebaseline FROM PUBLIC;

ALTER TABLE public.birth_drift_rebaseline OWNER TO birthgate_owner;
ALTER TABLE public.birth_drift_baseline OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_drift_baseline_append_only() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_drift_snapshot() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_drift_control_policy() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_drift_capture_baseline(text, text, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_drift_capture_step(text) OWNER TO birthgate_owner;
GRANT SELECT ON public.dot_config, public.registry_changelog, public.dot_block_dim_source, public.dot_action_block_policy TO birthgate_owner;

-- doc 07: the 3 read-only permit views (the worker reads these, never the table).
CREATE VIEW public.v_permit_active AS
SELECT p.permit_id, p.entity_code, p.collection_name, p.state, p.expires_at,
       p.expires_at < clock_timestamp() AS overdue,
       p.workflow_id, p.run_id, p.row_id, p.break_glass, p.requested_by, p.created_at, p.updated_at
  FROM public.birth_admission_permit p
 WHERE p.state IN ('REQUESTED', 'RESERVED', 'CONSUMED');

-- Stuck: every REQUESTED permit, whatever its placeholder expires_at — only fn_permit_request leaves
-- one behind (fn_permit_issue reserves in the same transaction), and the admission workflow calls it
-- for a stuck birth parked for an operator — and RESERVED/CONSUMED still live past their TTL (the
-- sweep has not run, or a CONSUMED permit never finalized). overdue_by is NULL while not overdue.
CREATE VIEW public.v_permit_stuck AS
SELECT p.permit_id, p.entity_code, p.collection_name, p.state, p.expires_at,
       CASE WHEN p.expires_at < clock_timestamp() THEN clock_timestamp() - p.expires_at END AS overdue_by,
       p.workflow_id, p.run_id, p.row_id, p.updated_at
  FROM public.birth_admission_permit p
 WHERE p.state = 'REQUESTED'
    OR (p.state IN ('RESERVED', 'CONSUMED') AND p.expires_at < clock_timestamp());

CREATE VIEW public.v_permit_summary AS
SELECT p.collection_name, p.state, count(*) AS permits,
       count(*) FILTER (WHERE p.break_glass) AS break_glass,
       min(p.created_at) AS oldest, max(p.updated_at) AS latest
  FROM public.birth_admission_permit p
 GROUP BY p.collection_name, p.state;

REVOKE ALL ON public.v_permit_active, public.v_permit_stuck, public.v_permit_summary FROM PUBLIC;
ALTER VIEW public.v_permit_active OWNER TO birthgate_owner;
ALTER VIEW public.v_permit_stuck OWNER TO birthgate_owner;
ALTER VIEW public.v_permit_summary OWNER TO birthgate_owner;

SELECT public.fn_drift_capture_step('step-12');

-- KB-3A66 §8 / KB-4410 §D.6: the drift monitor, DETECT_ONLY + fail-closed through BLOCK dims. A
-- superuser can always bypass the gate (workflow_admin is superuser, KB-35E7 §4.6); this step makes
-- every bypass we know of loud within one drift tick (SECURITY.md lists them with their tests):
--   gate_drift                  the catalog (functions, triggers, ACLs, operators, event triggers, the
--                               switches) differs from the newest logged baseline set; a baseline set
--                               written outside fn_drift_capture_baseline; DDL on a governed object
--                               since the newest set (the DDL ledger below);
--   admission_ungated_rows      a governed row born after the flag without a FINALIZED permit for its
--                               id and code (disable the gate, insert, re-enable in one transaction);
--   admission_unlinked_births   a birth of a flagged family after the flag that no FINALIZED permit links;
--   permit_log_mismatch         a permit whose state is not its last logged move, or a FINALIZED permit
--                               without its row and live birth (a direct UPDATE of the permit table);
--   registry_coverage           the registry (meta_catalog, the admission's families) and the live
--                               birth and gate triggers disagree (KB-4410 §D.4 STOP-on-mismatch).
-- All five are hard: the database gate refuses every insert while any is non-zero (through
-- birth_admission_guard), and no break-glass overrides them.

-- The DDL ledger: what the DDL guard sees is written down, not only warned about (issue 7 hole 6).
CREATE TABLE public.birth_ddl_ledger (
  ddl_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at              timestamptz NOT NULL DEFAULT clock_timestamp(),
  txid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
  session_role    text NOT NULL DEFAULT session_user,
  acting_role     text NOT NULL,
  command_tag     text NOT NULL,
  object_type     text,
  object_identity text
);
CREATE INDEX idx_ddl_ledger_at ON public.birth_ddl_ledger (at);
REVOKE ALL ON TABLE public.birth_ddl_ledger FROM PUBLIC;
-- Append-only, like the baselines (step 12's guard function).
CREATE TRIGGER trg_ddl_ledger_append_only BEFORE UPDATE OR DELETE ON public.birth_ddl_ledger
  FOR EACH ROW EXECUTE FUNCTION public.fn_drift_baseline_append_only();
CREATE TRIGGER trg_ddl_ledger_no_truncate BEFORE TRUNCATE ON public.birth_ddl_ledger
  FOR EACH STATEMENT EXECUTE FUNCTION public.fn_drift_baseline_append_only();
ALTER TABLE public.birth_ddl_ledger ENABLE ALWAYS TRIGGER trg_ddl_ledger_append_only;
ALTER TABLE public.birth_ddl_ledger ENABLE ALWAYS TRIGGER trg_ddl_ledger_no_truncate;

-- Called by the event-trigger functions below with the caller's rights, so EXECUTE is PUBLIC; it can
-- only add a row stamped with the real session role, never remove one.
CREATE FUNCTION public.fn_ddl_ledger_record(p_command_tag text, p_object_type text, p_object_identity text, p_acting_role text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- current_user here is birthgate_owner; the DDL author's role comes from the event-trigger function
  -- (SECURITY INVOKER), the login from session_user (the column default).
  INSERT INTO public.birth_ddl_ledger (acting_role, command_tag, object_type, object_identity)
  VALUES (left(coalesce(p_acting_role, '?'), 100), left(coalesce(p_command_tag, '?'), 100), left(p_object_type, 100),
          left(p_object_identity, 1000));
END;
$$;

CREATE FUNCTION public.fn_birthgate_ddl_record()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands() LOOP
    IF r.schema_name IS NULL OR r.schema_name = 'public' THEN
      PERFORM public.fn_ddl_ledger_record(r.command_tag, r.object_type, r.object_identity, current_user::text);
    END IF;
  END LOOP;
END;
$$;

CREATE FUNCTION public.fn_birthgate_drop_record()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM pg_catalog.pg_event_trigger_dropped_objects() WHERE original LOOP
    IF r.schema_name IS NULL OR r.schema_name = 'public' THEN
      PERFORM public.fn_ddl_ledger_record(TG_TAG, r.object_type, r.object_identity, current_user::text);
    END IF;
  END LOOP;
END;
$$;

CREATE EVENT TRIGGER trg_birthgate_ddl_ledger ON ddl_command_end EXECUTE FUNCTION public.fn_birthgate_ddl_record();
CREATE EVENT TRIGGER trg_birthgate_drop_ledger ON sql_drop EXECUTE FUNCTION public.fn_birthgate_drop_record();
-- ENABLE ALWAYS, and the estate's own DDL guard too: with the default state a superuser's
-- SET session_replication_role = replica silences them.
ALTER EVENT TRIGGER trg_birthgate_ddl_ledger ENABLE ALWAYS;
ALTER EVENT TRIGGER trg_birthgate_drop_ledger ENABLE ALWAYS;
ALTER EVENT TRIGGER trg_guard_trigger_ddl ENABLE ALWAYS;
ALTER EVENT TRIGGER trg_guard_trigger_drop ENABLE ALWAYS;

-- The admission's BLOCK dims: which dims an admission checks, computed by which function. Owned by
-- birthgate_owner (the estate owner cannot add, remove or redirect one); a dim whose function does not
-- belong to a trusted role (birthgate_owner or a superuser) is not computed, which fails closed.
CREATE TABLE public.birth_admission_dim (
  dim         text PRIMARY KEY,
  count_fn    regprocedure NOT NULL,
  hard        boolean NOT NULL DEFAULT true,   -- hard: no break-glass admits past it
  enabled     boolean NOT NULL DEFAULT true,
  description text NOT NULL
);
REVOKE ALL ON TABLE public.birth_admission_dim FROM PUBLIC;

-- Operator switches are on the record.
CREATE TABLE public.birth_admission_switch_log (
  switch_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  collection_name text NOT NULL,
  halted          boolean NOT NULL,
  actor           text NOT NULL,
  reason          text NOT NULL,
  session_role    text NOT NULL DEFAULT session_user,
  at              timestamptz NOT NULL DEFAULT clock_timestamp()
);
REVOKE ALL ON TABLE public.birth_admission_switch_log FROM PUBLIC;
-- Append-only, like the DDL ledger: fn_drift_check reads the newest row as the switch's record, so a
-- row rewritten or removed would let a hand-set halted agree with it. Even a superuser must first
-- DISABLE the trigger, which is DDL (recorded by the ledger's event trigger).
CREATE TRIGGER trg_switch_log_append_only BEFORE UPDATE OR DELETE ON public.birth_admission_switch_log
  FOR EACH ROW EXECUTE FUNCTION public.fn_drift_baseline_append_only();
CREATE TRIGGER trg_switch_log_no_truncate BEFORE TRUNCATE ON public.birth_admission_switch_log
  FOR EACH STATEMENT EXECUTE FUNCTION public.fn_drift_baseline_append_only();
ALTER TABLE public.birth_admission_switch_log ENABLE ALWAYS TRIGGER trg_switch_log_append_only;
ALTER TABLE public.birth_admission_switch_log ENABLE ALWAYS TRIGGER trg_switch_log_no_truncate;

-- ---------------------------------------------------------------------------------------------------
-- Data-level invariants (no catalog trick hides a row that is there).

CREATE FUNCTION public.fn_dim_ungated_rows()
RETURNS TABLE (block_count bigint, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
BEGIN
  IF NOT public.fn_family_flag('dot_tools', 'birth_admission_required') THEN
    block_count := 0; detail := 'dot_tools not flagged'; RETURN NEXT; RETURN;
  END IF;
  SELECT count(*), coalesce(string_agg(format('dot_tools row %s (%s)', d.id, left(d.code::text, 60)), ', ' ORDER BY d.id)
                           FILTER (WHERE d.rn <= 5), 'none')
    INTO block_count, detail
    FROM (SELECT d.id, d.code, row_number() OVER (ORDER BY d.id) AS rn
            FROM public.dot_tools d
           WHERE NOT EXISTS (SELECT 1 FROM public.birth_admission_entry e
                              WHERE e.collection_name = 'dot_tools' AND e.kind = 'row' AND e.id = d.id
                                AND e.entity_code IS NOT DISTINCT FROM d.code::text)
             AND NOT EXISTS (SELECT 1 FROM public.birth_admission_permit p
                              WHERE p.collection_name = 'dot_tools' AND p.row_id = d.id
                                AND p.entity_code = d.code::text AND p.state = 'FINALIZED')) d;
  RETURN NEXT;
END;
$$;

CREATE FUNCTION public.fn_dim_unlinked_births()
RETURNS TABLE (block_count bigint, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
BEGIN
  IF NOT public.fn_family_flag('dot_tools', 'birth_admission_required') THEN
    block_count := 0; detail := 'dot_tools not flagged'; RETURN NEXT; RETURN;
  END IF;
  SELECT count(*), coalesce(string_agg(format('birth %s (%s)', b.id, left(b.code, 60)), ', ' ORDER BY b.id)
                           FILTER (WHERE b.rn <= 5), 'none')
    INTO block_count, detail
    FROM (SELECT b.id, b.entity_code::text AS code, row_number() OVER (ORDER BY b.id) AS rn
            FROM public.birth_registry b
           WHERE b.collection_name = 'dot_tools'
             AND NOT EXISTS (SELECT 1 FROM public.birth_admission_entry e
                              WHERE e.collection_name = 'dot_tools' AND e.kind = 'birth' AND e.id = b.id)
             AND NOT EXISTS (SELECT 1 FROM public.birth_admission_permit p
                              WHERE p.birth_id = b.id AND p.state = 'FINALIZED')) b;
  RETURN NEXT;
END;
$$;

CREATE FUNCTION public.fn_dim_permit_log_mismatch()
RETURNS TABLE (block_count bigint, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
BEGIN
  SELECT count(*), coalesce(string_agg(format('permit %s %s (%s)', m.permit_id, m.state, m.why), ', ' ORDER BY m.permit_id)
                           FILTER (WHERE m.rn <= 5), 'none')
    INTO block_count, detail
    FROM (SELECT p.permit_id, p.state, row_number() OVER (ORDER BY p.permit_id) AS rn,
                 CASE WHEN l.to_state IS DISTINCT FROM p.state THEN format('last logged move → %s', coalesce(l.to_state, 'none'))
                      ELSE 'FINALIZED without its row or live birth' END AS why
            FROM public.birth_admission_permit p
            LEFT JOIN LATERAL (SELECT t.to_state FROM public.birth_admission_permit_transition t
                                WHERE t.permit_id = p.permit_id ORDER BY t.transition_id DESC LIMIT 1) l ON true
           WHERE l.to_state IS DISTINCT FROM p.state
              OR (p.state = 'FINALIZED'
                  AND (p.row_id IS NULL OR p.birth_id IS NULL
                       OR NOT EXISTS (SELECT 1 FROM public.birth_registry b
                                       WHERE b.id = p.birth_id AND b.entity_code = p.entity_code
                                         AND b.collection_name = p.collection_name AND b.jsonb_profile ? 'admission')))) m;
  RETURN NEXT;
END;
$$;

-- ---------------------------------------------------------------------------------------------------
-- Registry coverage (KB-4410 §D.4 "registry-driven coverage + STOP-on-mismatch", KB-35E7 §4.4): the
-- estate's birth and gate bindings were hand-made lists (the 166 fn_birth_registry_auto triggers, the
-- 16 fn_birth_gate tables), so the registry and the live triggers can drift apart without a word. The
-- registry is meta_catalog (which collections are managed, born by code or by id, from which field)
-- plus the admission's own families (birth_admission_family, and birth_admission_entry for a family
-- whose row a superuser deleted: fn_family_flag keeps it governed). One row per mismatch:
--   MISSING_TABLE               a managed collection (born by code or id) has no table in public;
--   MISSING_BIRTH_TRIGGER       a managed collection's table has no AFTER INSERT … FOR EACH ROW trigger
--                               calling its birth function on its registered field;
--   UNREGISTERED_BIRTH_TRIGGER  a birth binding on a table the registry does not manage that way
--                               (not registered, unmanaged, another birth mode or field, outside public);
--   UNREGISTERED_GATE           fn_birth_gate on a table meta_catalog does not manage;
--   UNREGISTERED_PERMIT_GATE    a BEFORE INSERT row trigger of birthgate_owner's (a permit gate) on an
--                               estate table that is no admission family;
--   UNGATED_FAMILY              a flagged family that is not a managed code-keyed collection, or whose
--                               table lacks one of the admission's triggers (gate, consume, finalize,
--                               the three row guards).
-- Presence, not state: a governed trigger that is DISABLED (or not ENABLE ALWAYS) is gate_drift's
-- finding, unconditionally and against the baseline; this dim asks whether the bindings the registry
-- implies exist at all, and no rebaseline can accept their absence.
-- Hard, like the other four: a coverage hole is estate-wide, so one birth's break-glass cannot mend it
-- (and a row admitted past a missing birth trigger is never born); only a repair of the triggers or of
-- the registry clears it. The registry's rows are data, not DDL: a meta_catalog edit reaches the
-- preflight's reused dims up to reuse_for late (fn_admission_dims_recent), a dropped trigger at once.
CREATE FUNCTION public.fn_registry_coverage()
RETURNS TABLE (collection_name text, mismatch text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
#variable_conflict use_column
BEGIN
  -- plpgsql, not sql: a SQL function with SET clauses is planned again on every call; this plan is kept.
  RETURN QUERY
  WITH birth_fn AS (
    SELECT p.oid, CASE p.proname WHEN 'fn_birth_registry_auto' THEN 'code'::text ELSE 'id'::text END AS mode,
           p.proname::text AS fn
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = 'public'::regnamespace AND p.pronargs = 0
       AND p.proname IN ('fn_birth_registry_auto', 'fn_birth_registry_auto_id')
  ), reg AS (
    SELECT mc.collection_name::text AS coll, mc.managed, mc.birth_mode::text AS mode,
           CASE mc.birth_mode::text WHEN 'code' THEN mc.code_field::text WHEN 'id' THEN mc.id_field::text END AS field,
           pg_catalog.to_regclass(pg_catalog.format('public.%I', mc.collection_name::text)) AS rel
      FROM public.meta_catalog mc
  ), bind AS (
    -- Every birth binding in the database, whatever the schema: a birth trigger on a table outside
    -- public births rows under that table's name.
    -- (substring … FROM … FOR and position … IN are grammar, resolved in pg_catalog, first on the path.)
    SELECT t.tgrelid AS rel, n.nspname::text AS nsp, c.relname::text AS relname, t.tgname::text AS tgname, f.mode, f.fn,
           CASE WHEN t.tgnargs = 0 THEN f.mode  -- the functions' own default: coalesce(TG_ARGV[0], 'code' | 'id')
                ELSE pg_catalog.convert_from(substring(t.tgargs FROM 1 FOR position(pg_catalog.decode('00', 'hex') IN t.tgargs) - 1), 'UTF8') END AS field,
           (t.tgtype::integer & 71) = 5 AS after_insert_row   -- ROW (1) | INSERT (4), not BEFORE (2) nor INSTEAD (64)
      FROM pg_catalog.pg_trigger t
      JOIN birth_fn f ON f.oid = t.tgfoid
      JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE NOT t.tgisinternal
  ), owner_role AS (
    SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = 'birthgate_owner'
  ), admission_trg AS (
    -- The admission's triggers on estate tables (tables birthgate_owner does not own itself).
    SELECT t.tgrelid AS rel, n.nspname::text AS nsp, c.relname::text AS relname, t.tgname::text AS tgname,
           t.tgtype::integer AS tgtype, t.tgconstraint <> 0 AS is_constraint, t.tgdeferrable, t.tginitdeferred
      FROM pg_catalog.pg_trigger t
      JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
      JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE NOT t.tgisinternal AND p.proowner IN (SELECT oid FROM owner_role)
       AND c.relowner NOT IN (SELECT oid FROM owner_role)
  ), family AS (
    SELECT f.collection_name::text AS coll FROM public.birth_admission_family f
    UNION SELECT e.collection_name::text FROM public.birth_admission_entry e
  ), flagged AS (
    SELECT f.coll, pg_catalog.to_regclass(pg_catalog.format('public.%I', f.coll)) AS rel
      FROM family f WHERE public.fn_family_flag(f.coll, 'birth_admission_required')
  ), piece AS (
    -- What a flagged family's table carries (CONTRACT.md "Triggers on dot_tools"): tgtype bits
    -- ROW 1, BEFORE 2, INSERT 4, DELETE 8, UPDATE 16, TRUNCATE 32.
    SELECT * FROM (VALUES ('permit gate (BEFORE INSERT, row)', 7, false),
                          ('consume (AFTER INSERT, row)', 5, false),
                          ('finalize (deferred constraint trigger AFTER INSERT)', 5, true),
                          ('row guard (AFTER UPDATE, row)', 17, false),
                          ('row guard (BEFORE DELETE, row)', 11, false),
                          ('row guard (BEFORE TRUNCATE)', 34, false)) v(what, tgtype, is_constraint)
  )
  SELECT r.coll, 'MISSING_TABLE',
         pg_catalog.format('meta_catalog manages it (births by %s) but public.%I does not exist', r.mode, r.coll)
    FROM reg r
   WHERE r.managed AND r.mode IN ('code', 'id') AND r.rel IS NULL
  UNION ALL
  SELECT r.coll, 'MISSING_BIRTH_TRIGGER',
         pg_catalog.format('no AFTER INSERT FOR EACH ROW trigger calls %s(%L)%s', f.fn, r.field,
                           coalesce('; bound: ' || (SELECT pg_catalog.string_agg(pg_catalog.format('%s %s(%L)%s', b.tgname, b.fn, b.field,
                                                                                           CASE WHEN b.after_insert_row THEN '' ELSE ' not AFTER INSERT' END),
                                                                         ', ' ORDER BY b.tgname)
                                                      FROM bind b WHERE b.rel = r.rel), ''))
    FROM reg r JOIN birth_fn f ON f.mode = r.mode
   WHERE r.managed AND r.rel IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM bind b WHERE b.rel = r.rel AND b.mode = r.mode AND b.field IS NOT DISTINCT FROM r.field AND b.after_insert_row)
  UNION ALL
  SELECT b.relname, 'UNREGISTERED_BIRTH_TRIGGER',
         pg_catalog.format('%s on %I.%I calls %s(%L), but %s', b.tgname, b.nsp, b.relname, b.fn, b.field,
                           CASE WHEN b.nsp <> 'public' THEN 'the registry names tables in public only'
                                WHEN r.coll IS NULL THEN 'meta_catalog does not register it'
                                WHEN NOT r.managed THEN 'meta_catalog does not manage it'
                                WHEN r.mode IS DISTINCT FROM b.mode THEN pg_catalog.format('meta_catalog says births by %s', r.mode)
                                ELSE pg_catalog.format('meta_catalog says field %L', r.field) END)
    FROM bind b LEFT JOIN reg r ON r.rel = b.rel
   WHERE NOT (coalesce(r.managed, false) AND r.mode IS NOT DISTINCT FROM b.mode AND r.field IS NOT DISTINCT FROM b.field)
  UNION ALL
  SELECT c.relname::text, 'UNREGISTERED_GATE',
         pg_catalog.format('%s on %I.%I calls fn_birth_gate(), but %s', t.tgname, n.nspname, c.relname,
                           CASE WHEN n.nspname <> 'public' THEN 'the registry names tables in public only'
                                WHEN r.coll IS NULL THEN 'meta_catalog does not register it'
                                ELSE 'meta_catalog does not manage it' END)
    FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN reg r ON r.rel = t.tgrelid
   WHERE NOT t.tgisinternal AND t.tgfoid = pg_catalog.to_regprocedure('public.fn_birth_gate()')
     AND NOT coalesce(r.managed, false)
  UNION ALL
  SELECT a.relname, 'UNREGISTERED_PERMIT_GATE',
         pg_catalog.format('%s on %I.%I gates inserts with birthgate_owner''s code, but %s', a.tgname, a.nsp, a.relname,
                           CASE WHEN a.nsp <> 'public' THEN 'admission families are tables in public only'
                                ELSE 'it is no admission family (birth_admission_family)' END)
    FROM admission_trg a
   WHERE (a.tgtype & 71) = 7  -- BEFORE INSERT FOR EACH ROW: the permit gate's shape
     AND (a.nsp <> 'public' OR NOT EXISTS (SELECT 1 FROM family f WHERE f.coll = a.relname))
  UNION ALL
  SELECT fl.coll, 'UNGATED_FAMILY',
         CASE WHEN fl.rel IS NULL THEN pg_catalog.format('flagged birth_admission_required, but public.%I does not exist', fl.coll)
              ELSE 'flagged birth_admission_required, but meta_catalog does not manage it as born by code' END
    FROM flagged fl
   WHERE fl.rel IS NULL
      OR NOT EXISTS (SELECT 1 FROM reg r WHERE r.rel = fl.rel AND r.managed AND r.mode = 'code')
  UNION ALL
  SELECT fl.coll, 'UNGATED_FAMILY',
         pg_catalog.format('flagged birth_admission_required, but public.%I has no %s of birthgate_owner''s', fl.coll, pc.what)
    FROM flagged fl CROSS JOIN piece pc
   WHERE fl.rel IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM admission_trg a
                      WHERE a.rel = fl.rel AND (a.tgtype & 127) = pc.tgtype AND a.is_constraint = pc.is_constraint
                        AND (NOT pc.is_constraint OR (a.tgdeferrable AND a.tginitdeferred)));
END;
$$;

-- The dim: one count, every mismatch named in its detail.
CREATE FUNCTION public.fn_dim_registry_coverage()
RETURNS TABLE (block_count bigint, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_catalog.count(*),
         coalesce(pg_catalog.string_agg(pg_catalog.format('%s %s: %s', m.mismatch, m.collection_name, m.detail), '; '
                                        ORDER BY m.mismatch, m.collection_name, m.detail), 'none')
    FROM public.fn_registry_coverage() m
$$;

-- ---------------------------------------------------------------------------------------------------
-- Catalog drift against the newest logged baseline set.

CREATE FUNCTION public.fn_drift_check()
RETURNS TABLE (kind text, name text, expected text, actual text, drift text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
  WITH latest AS (
    SELECT r.baseline_set, r.captured_at FROM public.birth_drift_rebaseline r ORDER BY r.rebaseline_id DESC LIMIT 1
  ), base AS (
    SELECT b.kind, b.name, b.fingerprint FROM public.birth_drift_baseline b JOIN latest l USING (baseline_set)
  ), now_ AS (
    SELECT s.kind, s.name, s.fingerprint, s.detail FROM public.fn_drift_snapshot() s
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
  UNION ALL
  -- Append-only, logged sets: rows written outside fn_drift_capture_baseline (another transaction than
  -- their log entry, or no log entry at all).
  SELECT 'baseline', b.baseline_set, 'written with its rebaseline log', 'written outside fn_drift_capture_baseline', 'FORGED'
    FROM public.birth_drift_baseline b
    LEFT JOIN public.birth_drift_rebaseline r ON r.baseline_set = b.baseline_set
   WHERE r.txid IS DISTINCT FROM b.txid
   GROUP BY b.baseline_set
  UNION ALL
  -- DDL on a governed object since the newest set (a body swapped and restored leaves this behind).
  SELECT 'ddl', format('%s %s', d.command_tag, d.object_identity), 'no DDL since the newest baseline',
         format('%s by %s at %s', d.command_tag, d.session_role, d.at), 'DDL'
    FROM public.birth_ddl_ledger d, latest l
   WHERE d.at > l.captured_at
     AND (d.object_identity ~ '(^| on )public\.(dot_tools|birth_registry|meta_catalog|dot_config|birth_admission_\w+|birth_drift_\w+|birth_break_glass|birth_status_transition|birth_ddl_ledger)(\.|$| )'
          OR d.object_identity ~ '^public\.(fn_birth|fn_pre_birth_check|fn_permit_|fn_admission_|fn_dt_|fn_dot_tools_|fn_family_|fn_drift_|fn_dim_|fn_break_glass|fn_gate_drift|fn_ddl_ledger|fn_birthgate_|gen_code_dot_tools|fn_registry_changelog|fn_set_created_by|fn_normalize_name|fn_notify_change|fn_set_updated_at)'
          OR d.object_type IN ('operator', 'cast', 'event trigger', 'policy', 'rule'))
  UNION ALL
  -- The switches exactly as expected: the gate's flag and its dot_config mirror say the same.
  SELECT 'control', format('%s.birth_admission_required', f.collection_name), f.required::text,
         coalesce(c.config_value::text, 'absent'), 'MISMATCH'
    FROM public.birth_admission_family f
    LEFT JOIN public.dot_config c ON c.collection_name = f.collection_name AND c.config_key = 'birth_admission_required'
   WHERE f.required AND c.config_value IS DISTINCT FROM 'true'::jsonb
  UNION ALL
  -- The guard the gate and the preflight's reuse read (fn_admission_dims_recent) as only a computation
  -- writes it: reuse_for a plain 0‥60 s (the CHECK's interval comparison lets '1 day -86399 s' or
  -- '100 years -36000 days' through), computed_at not after now (clock_timestamp: a computation earlier
  -- in this transaction is not in the future). Anything else was written by hand.
  SELECT 'control', 'birth_admission_guard.reuse_for', 'a plain 0 to 60 seconds', g.reuse_for::text, 'FORGED'
    FROM public.birth_admission_guard g
   WHERE date_part('year', g.reuse_for) <> 0 OR date_part('month', g.reuse_for) <> 0 OR date_part('day', g.reuse_for) <> 0
      OR extract(epoch FROM g.reuse_for) NOT BETWEEN 0 AND 60
  UNION ALL
  SELECT 'control', 'birth_admission_guard.computed_at', 'not after now', g.computed_at::text, 'FORGED'
    FROM public.birth_admission_guard g
   WHERE g.computed_at > clock_timestamp()
  UNION ALL
  -- The kill switch as its record says: fn_admission_halt writes birth_admission_family.halted and a
  -- switch-log row in one transaction, so the family's halted is its newest logged switch, or false —
  -- the column's default, which steps 9 and 11 never change and never log — when none was logged. Any
  -- other value was flipped behind the record (a superuser's UPDATE, or its row deleted: fn_family_flag
  -- then reads "not halted"). Not in the baseline: a halt is an operator's act, not a catalog change,
  -- so no rebaseline accepts it; fn_admission_halt re-stating the switch is what clears it.
  SELECT 'control', format('birth_admission_family.halted:%s', s.collection_name),
         CASE WHEN s.switch_id IS NULL THEN 'false (never switched)'
              ELSE format('%s (switch #%s by %s)', s.logged::text, s.switch_id, s.actor) END,
         coalesce(s.halted::text, 'absent'), 'FORGED'
    FROM (SELECT coalesce(f.collection_name, l.collection_name) AS collection_name, f.halted, l.halted AS logged,
                 l.switch_id, l.actor
            FROM public.birth_admission_family f
            FULL JOIN (SELECT DISTINCT ON (x.collection_name) x.collection_name, x.halted, x.switch_id, x.actor
                         FROM public.birth_admission_switch_log x
                        ORDER BY x.collection_name, x.switch_id DESC) l ON l.collection_name = f.collection_name) s
   WHERE coalesce(s.halted, false) IS DISTINCT FROM coalesce(s.logged, false)
$$;

CREATE VIEW public.v_gate_drift AS SELECT * FROM public.fn_drift_check();
REVOKE ALL ON public.v_gate_drift FROM PUBLIC;

-- The dim, in the shape dot_block_dim_source expects: () RETURNS TABLE (block_count, detail).
CREATE FUNCTION public.fn_gate_drift_dim()
RETURNS TABLE (block_count bigint, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT count(*), coalesce(string_agg(format('%s %s %s', d.drift, d.kind, d.name), '; ' ORDER BY d.kind, d.name), 'none')
    FROM public.fn_drift_check() d
$$;

INSERT INTO public.birth_admission_dim (dim, count_fn, hard, description) VALUES
  ('gate_drift', 'public.fn_gate_drift_dim()', true,
   'KB-3A66 §8: governed catalog, switches or baselines differ from the newest logged baseline set, or DDL touched them'),
  ('admission_ungated_rows', 'public.fn_dim_ungated_rows()', true,
   'governed rows since the flag without a FINALIZED permit for their id and code'),
  ('admission_unlinked_births', 'public.fn_dim_unlinked_births()', true,
   'births of a flagged family since the flag that no FINALIZED permit links'),
  ('permit_log_mismatch', 'public.fn_dim_permit_log_mismatch()', true,
   'permits whose state is not their last logged move, or FINALIZED without their row and live birth'),
  ('registry_coverage', 'public.fn_dim_registry_coverage()', true,
   'KB-4410 §D.4: meta_catalog and the admission families disagree with the live birth and gate triggers');

-- Every dim of the admission, computed (an untrusted or failing function is "not computed": fail
-- closed). Also refreshes birth_admission_guard, which the database gate reads on every insert: the
-- hard findings, and the blocking dims with when they were computed and the DDL ledger's newest id at
-- the start (the preflight reuses them while fresh: fn_admission_dims_recent).
CREATE FUNCTION public.fn_admission_dims()
RETURNS TABLE (dim text, block_count bigint, detail text, hard boolean, computed boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  d record;
  v_trusted boolean;
  v_findings integer := 0;
  v_detail text := '';
  v_dims jsonb := '[]'::jsonb;
  v_ddl_seen bigint;
BEGIN
  -- Read before any dim: DDL recorded while they are computed makes the stored answer stale at once.
  SELECT max(l.ddl_id) INTO v_ddl_seen FROM public.birth_ddl_ledger l;
  -- The five dims of this step are computed whatever the table says (a superuser who deletes or
  -- disables gate_drift's row must not switch off the check that reports it); the table adds dims.
  FOR d IN SELECT b.dim, b.count_fn::regprocedure AS count_fn, true AS hard
             FROM (VALUES ('admission_ungated_rows', 'public.fn_dim_ungated_rows()'),
                          ('admission_unlinked_births', 'public.fn_dim_unlinked_births()'),
                          ('gate_drift', 'public.fn_gate_drift_dim()'),
                          ('permit_log_mismatch', 'public.fn_dim_permit_log_mismatch()'),
                          ('registry_coverage', 'public.fn_dim_registry_coverage()')) b(dim, count_fn)
           UNION ALL
           SELECT x.dim, x.count_fn, x.hard FROM public.birth_admission_dim x
            WHERE x.enabled AND x.dim NOT IN ('admission_ungated_rows', 'admission_unlinked_births', 'gate_drift', 'permit_log_mismatch',
                                              'registry_coverage')
           ORDER BY 1 LOOP
    dim := d.dim; hard := d.hard; block_count := NULL; detail := NULL; computed := false;
    SELECT (r.rolsuper OR r.rolname = 'birthgate_owner') AND p.pronamespace = 'public'::regnamespace
      INTO v_trusted
      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
     WHERE p.oid = d.count_fn;
    IF NOT coalesce(v_trusted, false) THEN
      detail := format('not computed: %s is not owned by a trusted role (fail closed)', d.count_fn);
    ELSE
      BEGIN
        EXECUTE format('SELECT x.block_count::bigint, x.detail::text FROM %s x', d.count_fn)
          INTO block_count, detail;
        computed := block_count IS NOT NULL;
        IF NOT computed THEN detail := 'not computed: no count (fail closed)'; END IF;
      EXCEPTION WHEN OTHERS THEN
        detail := format('not computed: %s (fail closed)', left(SQLERRM, 200));
      END;
    END IF;
    IF d.hard AND (NOT computed OR block_count > 0) THEN
      v_findings := v_findings + greatest(coalesce(block_count, 1), 1)::integer;
      v_detail := v_detail || CASE WHEN v_detail = '' THEN '' ELSE '; ' END
                  || format('%s=%s: %s', d.dim, coalesce(block_count::text, 'not computed'), left(detail, 200));
    END IF;
    IF NOT computed OR block_count > 0 THEN
      v_dims := v_dims || jsonb_build_object('dim', dim, 'count', block_count, 'detail', detail, 'hard', hard);
    END IF;
    RETURN NEXT;
  END LOOP;
  UPDATE public.birth_admission_guard g
     SET findings = v_findings, detail = CASE WHEN v_detail = '' THEN 'none' ELSE left(v_detail, 2000) END,
         computed_at = clock_timestamp(), computed_by = session_user, dims = v_dims, ddl_seen = v_ddl_seen
   WHERE g.singleton;
END;
$$;

-- The admission's blocking dims for its preflight (issue 8 §6: computing every dim costs ~12 ms on a
-- production-sized estate, the catalog snapshot behind gate_drift most of it). Reused from the guard
-- while fresh: computed less than reuse_for ago (5 s unless the owner sets it; at most a minute), no DDL
-- recorded since (any DDL in public, committed, moves the ledger past ddl_seen), and the dim policy not
-- written since (its trigger clears the stored dims). Otherwise computed now, which refreshes the guard.
-- What this gives up: a change no DDL records — a superuser's direct catalog or data edit — reaches the
-- preflight up to reuse_for late; the drift tick, the gate's own checks and the next computation still
-- see it. The stop-conditions read live in fn_admission_preflight (flag, kill switch, code rule) are not
-- cached.
CREATE FUNCTION public.fn_admission_dims_recent()
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  g public.birth_admission_guard;
  v_found boolean;
  v_ddl bigint;
  v_now timestamptz := clock_timestamp();
  v_dims jsonb;
BEGIN
  SELECT * INTO g FROM public.birth_admission_guard x WHERE x.singleton;
  v_found := FOUND;
  SELECT max(l.ddl_id) INTO v_ddl FROM public.birth_ddl_ledger l;
  -- Age and window in seconds, the window clamped to 0‥60: the table's CHECK compares intervals with
  -- a month counted as 30 days and a day as 24 h, so a reuse_for of '100 years -36000 days' passes it
  -- as zero, yet now() - it reaches 525 days back. An answer dated after now was written by no
  -- computation: stale (and fn_drift_check reports it).
  IF v_found AND g.dims IS NOT NULL AND jsonb_typeof(g.dims) = 'array'
     AND g.computed_at <= v_now
     AND extract(epoch FROM v_now - g.computed_at) < least(greatest(extract(epoch FROM g.reuse_for), 0), 60)
     AND g.ddl_seen IS NOT DISTINCT FROM v_ddl THEN
    RETURN g.dims;
  END IF;
  SELECT coalesce(jsonb_agg(jsonb_build_object('dim', d.dim, 'count', d.block_count, 'detail', d.detail, 'hard', d.hard)
                            ORDER BY d.dim) FILTER (WHERE NOT d.computed OR d.block_count > 0), '[]'::jsonb)
    INTO v_dims FROM public.fn_admission_dims() d;
  RETURN v_dims;
END;
$$;

-- A write to the dim policy (owner or superuser only) makes the next preflight compute every dim.
CREATE FUNCTION public.fn_admission_dim_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE public.birth_admission_guard g SET dims = NULL WHERE g.singleton;
  RETURN NULL;
END;
$$;
CREATE TRIGGER trg_admission_dim_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.birth_admission_dim
  FOR EACH STATEMENT EXECUTE FUNCTION public.fn_admission_dim_changed();
ALTER TABLE public.birth_admission_dim ENABLE ALWAYS TRIGGER trg_admission_dim_changed;

-- One drift tick (the drift-watch Schedule's activity): every dim computed, the guard refreshed;
-- returns the non-zero or uncomputed dims (empty = clean).
CREATE FUNCTION public.fn_drift_tick()
RETURNS TABLE (dim text, block_count bigint, detail text, hard boolean)
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT d.dim, d.block_count, d.detail, d.hard FROM public.fn_admission_dims() d
   WHERE NOT d.computed OR d.block_count > 0
$$;

-- The kill switch, an operator's act on the record (EXECUTE: birthgate_operator).
CREATE FUNCTION public.fn_admission_halt(p_collection_name text, p_halted boolean, p_actor text, p_reason text)
RETURNS public.birth_admission_family
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v public.birth_admission_family;
BEGIN
  PERFORM public.fn_admission_require_collection(p_collection_name);
  PERFORM public.fn_admission_require_text('actor', p_actor, 200);
  PERFORM public.fn_admission_require_text('reason', p_reason, 2000, true);
  IF p_halted IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'halted must be true or false';
  END IF;
  INSERT INTO public.birth_admission_family (collection_name, halted, updated_by)
  VALUES (p_collection_name, p_halted, session_user)
  ON CONFLICT (collection_name) DO UPDATE SET halted = EXCLUDED.halted, updated_at = clock_timestamp(), updated_by = session_user
  RETURNING * INTO v;
  INSERT INTO public.birth_admission_switch_log (collection_name, halted, actor, reason)
  VALUES (p_collection_name, p_halted, p_actor, p_reason);
  RETURN v;
END;
$$;

-- The only way to accept a change the drift watch reports (issue 7 hole 6): an owner-approved, logged
-- rebaseline — a new baseline set, then the dims recomputed (the guard follows). EXECUTE:
-- birthgate_operator. It changes nothing the data-level dims see: an ungated row stays a finding
-- until it is repaired.
CREATE FUNCTION public.fn_drift_rebaseline(p_owner text, p_reason text, p_approval_id text)
RETURNS TABLE (baseline_set text, rows_captured integer, remaining_findings integer)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  baseline_set := format('rebaseline@%s', to_char(clock_timestamp(), 'YYYYMMDD"T"HH24MISS.US'));
  rows_captured := public.fn_drift_capture_baseline(baseline_set, p_owner, p_reason, p_approval_id);
  PERFORM count(*) FROM public.fn_admission_dims();
  SELECT g.findings INTO remaining_findings FROM public.birth_admission_guard g;
  RETURN NEXT;
END;
$$;
REVOKE ALL ON FUNCTION public.fn_drift_rebaseline(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.fn_drift_rebaseline(text, text, text) TO birthgate_operator;
ALTER FUNCTION public.fn_drift_rebaseline(text, text, text) OWNER TO birthgate_owner;

-- Plugged in as data for the estate's own fn_assert_safe_for_dot_action (its callers, its rights): the
-- same gate_drift dim. The admission itself reads birth_admission_dim, never these two tables.
-- SECURITY.md: an estate table is written as its owner, so triggers the owner put on it never run
-- with the applying superuser's rights.
SELECT set_config('role', pg_catalog.pg_get_userbyid(c.relowner)::text, true) FROM pg_catalog.pg_class c
 WHERE c.oid = 'public.dot_block_dim_source'::regclass;
INSERT INTO public.dot_block_dim_source (dim, count_fn, description)
VALUES ('gate_drift', 'public.fn_gate_drift_dim', 'KB-3A66 §8: governed functions, trigger sets or tgenabled differ from the drift baseline');
INSERT INTO public.dot_action_block_policy (action, dim, note)
VALUES ('birth_admit', 'gate_drift', 'KB-3A66 §8: fail closed on gate drift');
RESET ROLE;

-- The preflight as the worker may run it (kept for callers of fn_assert_safe_for_dot_action's shape):
-- the admission's dims, BG423 when any blocks.
CREATE FUNCTION public.fn_admission_assert_safe(p_action text DEFAULT 'birth_admit')
RETURNS TABLE (dim text, block_count bigint, blocking boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_blocking text;
BEGIN
  PERFORM public.fn_admission_require_text('action', p_action, 200);
  IF p_action <> 'birth_admit' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('action %s is not an admission action (birth_admit)', left(p_action, 80));
  END IF;
  RETURN QUERY SELECT d.dim, d.block_count, (NOT d.computed OR d.block_count > 0) FROM public.fn_admission_dims() d;
  SELECT string_agg(format('%s=%s', d.dim, coalesce(d.block_count::text, 'not computed')), ', ' ORDER BY d.dim)
    INTO v_blocking FROM public.fn_admission_dims() d WHERE NOT d.computed OR d.block_count > 0;
  IF v_blocking IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG423', MESSAGE = format('birth_admit blocked: %s', v_blocking);
  END IF;
END;
$$;

-- DESIGN §4 step 1 "preflight — stop-conditions": every stop-condition of one admission in one read,
-- returned rather than raised so a parked workflow can show them. An empty "blockers" list = clear to
-- admit. Each blocker says whether it is hard (kill switch, the admission's hard dims, a dim not
-- computed: no break-glass admits past it). "already_born" (issue 8 §4): the birth of (code,
-- collection) when it is 'born' and its row is live — an insert of that code can only fail on the
-- table's own uniqueness, so the caller takes that birth instead of trying; null otherwise (also when
-- birthgate_owner cannot read the collection's table: not known, the insert then decides).
-- lock_timeout = 0 inside: fn_admission_dims takes any error of a dim for "not computed" (fail closed),
-- so a dim that met the worker's 3 s lock_timeout (dot_tools briefly under an ALTER) would park the
-- admission on a hard blocker and poison the guard for every insert. A lock wait here is bounded by the
-- role's statement_timeout instead, whose cancel no handler catches: the preflight fails, retryably.
CREATE FUNCTION public.fn_admission_preflight(p_entity_code text, p_collection_name text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
SET lock_timeout = 0
AS $$
DECLARE
  v_flag boolean;
  v_managed boolean;
  v_pattern text;
  v_rule_ok boolean;
  v_halted boolean;
  v_dims jsonb;
  v_blockers jsonb := '[]'::jsonb;
  v_birth record;
  v_row_id bigint;
  v_already_born jsonb;
BEGIN
  PERFORM public.fn_admission_require_text('entity_code', p_entity_code, 200);
  PERFORM public.fn_admission_require_text('collection_name', p_collection_name, 200);
  SELECT mc.managed, mc.code_pattern::text INTO v_managed, v_pattern
    FROM public.meta_catalog mc WHERE mc.collection_name = p_collection_name;
  IF NOT FOUND OR to_regclass(format('public.%I', p_collection_name)) IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('collection %s is unknown or not managed in meta_catalog', left(p_collection_name, 80));
  END IF;
  v_flag := public.fn_family_flag(p_collection_name, 'birth_admission_required');
  v_halted := public.fn_family_flag(p_collection_name, 'admission_halted');
  v_rule_ok := public.fn_family_code_rule(p_collection_name, p_entity_code);

  v_dims := public.fn_admission_dims_recent();

  IF NOT coalesce(v_managed, false) THEN
    v_blockers := v_blockers || jsonb_build_object('kind', 'collection_unmanaged', 'hard', false,
      'detail', format('meta_catalog does not manage %s', p_collection_name));
  END IF;
  IF NOT v_flag THEN
    v_blockers := v_blockers || jsonb_build_object('kind', 'family_flag_off', 'hard', false,
      'detail', format('birth_admission_required is not set for %s', p_collection_name));
  END IF;
  IF NOT v_rule_ok THEN
    v_blockers := v_blockers || jsonb_build_object('kind', 'code_rule', 'hard', false,
      'detail', format('code %s does not match %s', left(p_entity_code, 80), coalesce(v_pattern, '^[A-Z]+-[0-9]+$')));
  END IF;
  IF v_halted THEN
    v_blockers := v_blockers || jsonb_build_object('kind', 'kill_switch', 'hard', true,
      'detail', format('admissions of %s are halted (kill switch)', p_collection_name));
  END IF;
  v_blockers := v_blockers || coalesce((SELECT jsonb_agg(jsonb_build_object('kind', 'block_dim', 'hard', (d ->> 'hard')::boolean OR d ->> 'count' IS NULL,
      'detail', format('%s=%s: %s', d ->> 'dim', coalesce(d ->> 'count', 'not computed'), d ->> 'detail')))
      FROM jsonb_array_elements(v_dims) d), '[]'::jsonb);

  -- The live birth of this code, if any: status 'born' and a row of the collection with that code
  -- (read like fn_birth_retire_checked reads it; the table's code expression from meta_catalog).
  SELECT b.id, b.status::text AS status INTO v_birth
    FROM public.birth_registry b
   WHERE b.entity_code::text = p_entity_code AND b.collection_name::text = p_collection_name
     AND b.status::text = 'born'::text
   ORDER BY b.id
   LIMIT 1;
  IF FOUND AND has_table_privilege(format('public.%I', p_collection_name), 'SELECT') THEN
    EXECUTE (SELECT format('SELECT t.%I::bigint FROM public.%I t WHERE %s = $1 ORDER BY t.%I LIMIT 1',
                           coalesce(mc.id_field::text, 'id'), p_collection_name,
                           CASE WHEN mc.code_field IS NOT NULL THEN format('t.%I::text', mc.code_field::text)
                                ELSE format('(%L || '':'' || t.%I::text)', p_collection_name, coalesce(mc.id_field::text, 'id')) END,
                           coalesce(mc.id_field::text, 'id'))
               FROM public.meta_catalog mc WHERE mc.collection_name::text = p_collection_name)
      INTO v_row_id USING p_entity_code;
    IF v_row_id IS NOT NULL THEN
      v_already_born := jsonb_build_object('birth_id', v_birth.id, 'row_id', v_row_id, 'status', v_birth.status);
    END IF;
  END IF;

  RETURN jsonb_build_object(
    'family_flag', v_flag,
    'collection_managed', v_managed,
    'code_pattern', v_pattern,
    'code_rule_ok', v_rule_ok,
    'kill_switch', v_halted,
    'block_dims', v_dims,
    'blockers', v_blockers,
    'already_born', v_already_born);
END;
$$;

-- The admission's first step in one call (issue 8 §6): the stop-conditions, and — only when they are
-- clear and the code is not already born — the RESERVED permit, in one transaction. The answer is the
-- preflight's, plus `permit`: the permit fn_permit_issue reserved (or the key already held), or, when
-- something stops the admission, the permit the key already holds (a re-run after a lost answer: the
-- caller holds it, and withdraws it, as before), else null. No permit is written when something stops it
-- and the key holds nothing. The same validation and SQLSTATEs as fn_admission_preflight and
-- fn_permit_issue (BG400, BG409); the worker's lock and statement bounds hold for the permit's writes.
CREATE FUNCTION public.fn_admission_open(p_entity_code text, p_collection_name text, p_idempotency_key text,
                                         p_ttl_seconds integer, p_actor text,
                                         p_workflow_id text DEFAULT NULL, p_run_id text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_report jsonb;
  v public.birth_admission_permit;
BEGIN
  -- Every parameter is checked before anything is read or written, whichever way the admission goes:
  -- the permit's own here (again in fn_permit_open when it is issued), the code and collection by the
  -- preflight.
  PERFORM public.fn_permit_require_params(p_idempotency_key, p_ttl_seconds, p_actor, p_workflow_id, p_run_id);
  v_report := public.fn_admission_preflight(p_entity_code, p_collection_name);
  IF jsonb_array_length(v_report -> 'blockers') = 0 AND jsonb_typeof(v_report -> 'already_born') IS DISTINCT FROM 'object' THEN
    v := public.fn_permit_issue(p_idempotency_key, p_entity_code, p_collection_name, p_ttl_seconds, p_actor,
                                p_workflow_id, p_run_id);
  ELSE
    SELECT * INTO v FROM public.birth_admission_permit p WHERE p.idempotency_key = p_idempotency_key;
    IF FOUND AND (v.entity_code IS DISTINCT FROM p_entity_code OR v.collection_name IS DISTINCT FROM p_collection_name) THEN
      RAISE EXCEPTION USING ERRCODE = 'BG409',
        MESSAGE = format('idempotency key already issued permit %s for (%s, %s)', v.permit_id,
                         left(v.entity_code, 80), v.collection_name);
    END IF;
  END IF;
  RETURN v_report || jsonb_build_object('permit', CASE WHEN v.permit_id IS NULL THEN NULL ELSE to_jsonb(v) END);
END;
$$;

REVOKE ALL ON FUNCTION public.fn_ddl_ledger_record(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.fn_ddl_ledger_record(text, text, text, text) TO PUBLIC;
REVOKE ALL ON FUNCTION public.fn_birthgate_ddl_record() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_birthgate_drop_record() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_dim_ungated_rows() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_dim_unlinked_births() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_dim_permit_log_mismatch() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_registry_coverage() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.fn_registry_coverage() TO birthgate_operator;
REVOKE ALL ON FUNCTION public.fn_dim_registry_coverage() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_drift_check() FROM PUBLIC;
-- The estate's own fn_assert_safe_for_dot_action calls it with its caller's rights: read-only, open.
REVOKE ALL ON FUNCTION public.fn_gate_drift_dim() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.fn_gate_drift_dim() TO PUBLIC;
REVOKE ALL ON FUNCTION public.fn_admission_dims() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_admission_dims_recent() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_admission_dim_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_drift_tick() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_admission_halt(text, boolean, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.fn_admission_halt(text, boolean, text, text) TO birthgate_operator;
REVOKE ALL ON FUNCTION public.fn_admission_assert_safe(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_admission_preflight(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_admission_open(text, text, text, integer, text, text, text) FROM PUBLIC;

ALTER TABLE public.birth_ddl_ledger OWNER TO birthgate_owner;
ALTER TABLE public.birth_admission_dim OWNER TO birthgate_owner;
ALTER TABLE public.birth_admission_switch_log OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_ddl_ledger_record(text, text, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_birthgate_ddl_record() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_birthgate_drop_record() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_dim_ungated_rows() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_dim_unlinked_births() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_dim_permit_log_mismatch() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_registry_coverage() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_dim_registry_coverage() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_drift_check() OWNER TO birthgate_owner;
ALTER VIEW public.v_gate_drift OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_gate_drift_dim() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_dims() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_dims_recent() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_dim_changed() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_drift_tick() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_halt(text, boolean, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_assert_safe(text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_preflight(text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_open(text, text, text, integer, text, text, text) OWNER TO birthgate_owner;

SELECT public.fn_drift_capture_step('step-16');
-- The guard starts from what the dims say now.
SELECT count(*) FROM public.fn_admission_dims();

-- KB-7D57 step 10: the deferred finalize on dot_tools, the live trg_iu_birth_gate_layer2 shape
-- (KB-2590 §6): a CONSTRAINT TRIGGER … DEFERRABLE INITIALLY DEFERRED that re-reads the row by id at
-- the commit boundary. Everything it writes belongs to the inserting transaction, so a rollback
-- (even after SET CONSTRAINTS … IMMEDIATE) returns the permit to RESERVED and FINALIZED means
-- "finalized in a committed transaction" (DESIGN §3).

-- SECURITY.md: birthgate_owner writes one estate table, birth_registry (finalize marks and re-births,
-- retire sets the status). An estate-owned trigger, rule, policy or expression on it would run with
-- birthgate_owner's rights during that write. This check refuses unless it is a plain table whose every
-- trigger function belongs to a trusted role (birthgate_owner or a superuser) and whose indexes,
-- constraints, defaults and column types call nothing outside pg_catalog; it takes ROW EXCLUSIVE first,
-- which waits for (and then blocks) CREATE TRIGGER/RULE/POLICY/INDEX and ALTER TABLE. It runs when this
-- step is applied, before every retire, and at the end of every non-superuser DDL
-- (trg_birthgate_protect_estate below), which keeps the answer true between those points.
CREATE FUNCTION public.fn_admission_estate_write_check()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_why text;
BEGIN
  LOCK TABLE public.birth_registry IN ROW EXCLUSIVE MODE;
  -- Each probe is an index lookup. Dependencies on built-in (pinned) objects are never recorded in
  -- pg_depend, so any recorded dependency of an index, constraint or default on a function or an
  -- operator is on a user-defined one.
  SELECT CASE
      WHEN c.relkind <> 'r' THEN format('relkind %s', c.relkind)
      WHEN c.relhasrules THEN 'it has rules'
      WHEN c.relrowsecurity THEN 'row level security is enabled'
      WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                     JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
                    WHERE t.tgrelid = c.oid AND NOT t.tgisinternal
                      AND p.proowner <> 'birthgate_owner'::regrole
                      AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = p.proowner))
        THEN 'a trigger runs a function of an untrusted owner'
      WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                      AND ty.typnamespace <> 'pg_catalog'::regnamespace) THEN 'a column has a user-defined type'
      WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                     JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = i.indexrelid
                    WHERE i.indrelid = c.oid
                      AND d.refclassid IN ('pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_operator'::regclass))
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                     JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_constraint'::regclass AND d.objid = k.oid
                    WHERE k.conrelid = c.oid
                      AND d.refclassid IN ('pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_operator'::regclass))
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_attrdef ad
                     JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
                    WHERE ad.adrelid = c.oid
                      AND d.refclassid IN ('pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_operator'::regclass))
        THEN 'an index, constraint or default calls a user-defined function or operator'
    END
    INTO v_why
    FROM pg_catalog.pg_class c WHERE c.oid = 'public.birth_registry'::regclass;
  IF v_why IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('refusing to write birth_registry: %s (its code would run with birthgate_owner''s rights)', v_why),
      HINT = 'the drift watch reports the change; restore the table or have the owner review it';
  END IF;
END;
$$;
REVOKE ALL ON FUNCTION public.fn_admission_estate_write_check() FROM PUBLIC;

-- KB-3A66 §7, fail closed: at commit the row must still exist with its code, and carry a permit that
-- this transaction consumed for exactly that row (id and code), unexpired; its birth must be the live
-- birth of that row, which is then marked and linked both ways (never a second birth). A birth the
-- admission's own rollback retired is born again through a logged transition (re-admission).
-- While the family flag is set, a row without such a permit fails the commit — never a quiet return.
CREATE FUNCTION public.fn_dt_finalize()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v public.birth_admission_permit;
  v_code text;
  v_birth record;
BEGIN
  SELECT * INTO v FROM public.birth_admission_permit p
   WHERE p.collection_name = 'dot_tools' AND p.row_id = NEW.id::bigint AND p.state = 'CONSUMED'
     AND p.consumed_txid = pg_current_xact_id()
   FOR UPDATE;
  IF NOT FOUND THEN
    IF NOT public.fn_family_flag('dot_tools', 'birth_admission_required') THEN
      RETURN NULL;  -- the family is not governed: nothing to finalize
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('finalize failed: dot_tools row %s (%s) has no permit consumed for it in this transaction',
                       NEW.id, left(coalesce(NEW.code::text, 'NULL'), 80)),
      DETAIL = 'no permit, no row: the transaction is aborted';
  END IF;

  SELECT d.code::text INTO v_code FROM public.dot_tools d WHERE d.id = NEW.id;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('finalize of permit %s failed: dot_tools row %s vanished before commit', v.permit_id, NEW.id),
      DETAIL = 'the transaction is aborted; the permit returns to RESERVED';
  END IF;
  IF v_code IS DISTINCT FROM v.entity_code OR v.row_id IS DISTINCT FROM NEW.id::bigint THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('finalize of permit %s failed: dot_tools row %s now has code %s, the permit is for %s',
                       v.permit_id, NEW.id, left(coalesce(v_code, 'NULL'), 80), left(v.entity_code, 80));
  END IF;
  IF v.expires_at <= clock_timestamp() THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('finalize of permit %s failed: the permit expired at %s, before the commit', v.permit_id, v.expires_at),
      DETAIL = 'the transaction is aborted; issue a new permit';
  END IF;

  -- The AFTER INSERT birth triggers (fn_birth_registry_auto) ran at the end of the insert statement.
  -- birth_registry is trusted to write (fn_admission_estate_write_check): checked when this step is
  -- applied, and kept so by trg_birthgate_protect_estate, which refuses any non-superuser DDL that would
  -- change the answer (a superuser's is found by the drift watch) — so not re-checked on every insert.
  SELECT b.id, b.status::text AS status, b.entity_id INTO v_birth
    FROM public.birth_registry b
   WHERE b.entity_code = v.entity_code AND b.collection_name = 'dot_tools'
   FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('finalize of permit %s failed: (%s, dot_tools) has no birth row', v.permit_id, left(v.entity_code, 80)),
      DETAIL = 'the AFTER INSERT birth trigger did not run; the transaction is aborted';
  END IF;
  IF v_birth.status = 'retired' THEN
    -- Re-admission after the admission's own rollback: born again, on the record (KB-4410 §D.5).
    UPDATE public.birth_registry b SET status = 'born', entity_id = NEW.id::bigint WHERE b.id = v_birth.id;
    INSERT INTO public.birth_status_transition (birth_id, entity_code, collection_name, from_status, to_status, actor, reason)
    VALUES (v_birth.id, v.entity_code, 'dot_tools', 'retired', 'born', session_user,
            format('re-admitted under permit %s, row %s', v.permit_id, NEW.id));
  ELSIF v_birth.status IS DISTINCT FROM 'born' OR v_birth.entity_id IS DISTINCT FROM NEW.id::bigint THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('finalize of permit %s failed: birth %s of %s is %s for row %s, not the live birth of row %s',
                       v.permit_id, v_birth.id, left(v.entity_code, 80), coalesce(v_birth.status, 'NULL'),
                       coalesce(v_birth.entity_id::text, 'NULL'), NEW.id),
      HINT = 'retire the earlier birth first (a phantom of a deleted row)';
  END IF;

  UPDATE public.birth_registry b
     SET jsonb_profile = coalesce(b.jsonb_profile, '{}'::jsonb)
                         || jsonb_build_object('admission', jsonb_build_object(
                              'permit_id', v.permit_id, 'row_id', NEW.id, 'finalized_at', clock_timestamp(),
                              'break_glass', v.break_glass))
   WHERE b.id = v_birth.id;

  -- One write: the move to FINALIZED links the birth in the same UPDATE.
  PERFORM public.fn_permit_move(v.permit_id, 'FINALIZED', session_user, format('finalized at commit, birth %s', v_birth.id),
                                p_birth_id => v_birth.id::bigint);
  RETURN NULL;
END;
$$;

REVOKE ALL ON FUNCTION public.fn_dt_finalize() FROM PUBLIC;

CREATE CONSTRAINT TRIGGER trg_dt_finalize
  AFTER INSERT ON public.dot_tools
  DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION public.fn_dt_finalize();

-- DESIGN §3: ENABLE ALWAYS, else session_replication_role = replica skips finalize silently.
ALTER TABLE public.dot_tools ENABLE ALWAYS TRIGGER trg_dt_finalize;

-- The permit side of the admission insert (SECURITY DEFINER: the caller has no rights on the permit
-- table): locks the permit, checks it is a dot_tools permit that may admit, and says what to do —
-- insert (RESERVED) or return the committed row (FINALIZED, a retry after a lost acknowledgement).
CREATE FUNCTION public.fn_admission_insert_permit(p_permit_id bigint)
RETURNS TABLE (state text, entity_code text, row_id bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v public.birth_admission_permit;
BEGIN
  IF p_permit_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'permit_id must not be NULL';
  END IF;
  SELECT * INTO v FROM public.birth_admission_permit p WHERE p.permit_id = p_permit_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('permit %s does not exist', p_permit_id);
  END IF;
  IF v.collection_name <> 'dot_tools' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('permit %s is for collection %s, not dot_tools', v.permit_id, v.collection_name);
  END IF;
  IF v.state NOT IN ('RESERVED', 'FINALIZED') THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('permit %s is %s; only a RESERVED permit admits an insert', v.permit_id, v.state);
  END IF;
  state := v.state; entity_code := v.entity_code; row_id := v.row_id;
  RETURN NEXT;
END;
$$;
REVOKE ALL ON FUNCTION public.fn_admission_insert_permit(bigint) FROM PUBLIC;

-- CONTRACT.md: the admission insert. SECURITY INVOKER on purpose (SECURITY.md): the INSERT runs with
-- the caller's rights, so the estate's own triggers on dot_tools — code the estate owner controls —
-- never run with birthgate_owner's. The code comes from the permit (never from the caller), the other
-- columns from p_fields; the gate, consume and finalize then run as for any insert. Idempotent: a retry
-- after a lost acknowledgement finds the permit FINALIZED and returns the committed row.
CREATE FUNCTION public.fn_admission_insert_dot_tools(p_permit_id bigint, p_fields jsonb)
RETURNS TABLE (row_id bigint, entity_code text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v record;
  v_key text;
  v_val jsonb;
  v_cols text;
  v_fields jsonb;
BEGIN
  IF p_permit_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'permit_id must not be NULL';
  END IF;
  IF p_fields IS NULL OR jsonb_typeof(p_fields) <> 'object' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'fields must be a JSON object (use {} for none)';
  END IF;
  FOR v_key, v_val IN SELECT f.key, f.value FROM jsonb_each(p_fields) f LOOP
    -- The code comes from the permit, the id from the table, the audit columns from the session.
    IF v_key IN ('code', 'id', 'created_by', 'updated_by') THEN
      RAISE EXCEPTION USING ERRCODE = 'BG400',
        MESSAGE = format('fields must not set %s: the code comes from the permit, the id from the table, %s from the session', v_key,
                         'created_by/updated_by');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = 'public.dot_tools'::regclass AND a.attname = v_key
                      AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attidentity <> 'a') THEN
      RAISE EXCEPTION USING ERRCODE = 'BG400',
        MESSAGE = format('fields has an unknown dot_tools column: %s', left(v_key, 63));
    END IF;
    IF jsonb_typeof(v_val) = 'string' AND length(v_val #>> '{}') > 8000 THEN
      RAISE EXCEPTION USING ERRCODE = 'BG400',
        MESSAGE = format('fields.%s is too long: %s characters, at most 8000 allowed', v_key, length(v_val #>> '{}'));
    END IF;
  END LOOP;

  SELECT * INTO v FROM public.fn_admission_insert_permit(p_permit_id);
  IF v.state = 'FINALIZED' THEN
    row_id := v.row_id; entity_code := v.entity_code;
    RETURN NEXT;
    RETURN;
  END IF;

  -- dot_tools.name is NOT NULL: without one the row is named by its code (family knowledge kept here).
  IF p_fields = '{}'::jsonb THEN
    -- The common admission sets no field: the same three columns as below, as a static statement
    -- whose plan PL/pgSQL keeps (a dynamic EXECUTE is planned on every call).
    INSERT INTO public.dot_tools (code, created_by, name)
    VALUES (v.entity_code, session_user, v.entity_code)
    RETURNING public.dot_tools.id::bigint, public.dot_tools.code::text INTO row_id, entity_code;
    RETURN NEXT;
    RETURN;
  END IF;
  v_fields := jsonb_build_object('name', v.entity_code) || p_fields
              || jsonb_build_object('code', v.entity_code, 'created_by', session_user);
  SELECT string_agg(format('%I', k), ', ' ORDER BY k) INTO v_cols FROM jsonb_object_keys(v_fields) k;
  RETURN QUERY EXECUTE format(
    'INSERT INTO public.dot_tools (%1$s) SELECT %1$s FROM jsonb_populate_record(NULL::public.dot_tools, $1) RETURNING id::bigint, code::text',
    v_cols) USING v_fields;
END;
$$;

REVOKE ALL ON FUNCTION public.fn_admission_insert_dot_tools(bigint, jsonb) FROM PUBLIC;

ALTER FUNCTION public.fn_admission_estate_write_check() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_dt_finalize() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_insert_permit(bigint) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_insert_dot_tools(bigint, jsonb) OWNER TO birthgate_owner;

-- SECURITY.md: the estate owner owns dot_tools and the tables the admission reads, so PostgreSQL lets it
-- disable the gate's triggers (and insert past them), retype a column the admission reads to a type of
-- its own (whose casts would then run inside definer code), or add rules, policies, triggers and
-- indexes to birth_registry. This event trigger refuses those changes at the end of the DDL, for every
-- login that is not a superuser (a superuser's are recorded by the DDL ledger and found by the drift
-- watch). ENABLE ALWAYS; it belongs to the applying superuser (event triggers must), its function to
-- birthgate_owner.
CREATE FUNCTION public.fn_admission_protect_estate()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_why text;
BEGIN
  IF coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user), false) THEN
    RETURN;
  END IF;
  SELECT string_agg(x.why, '; ') INTO v_why FROM (
    -- The admission's triggers on dot_tools, each present and ENABLE ALWAYS.
    SELECT format('trigger %s on dot_tools is %s', w.tgname, coalesce(t.tgenabled::text, 'missing')) AS why
      FROM (VALUES ('trg_permit_gate_dot_tools'), ('trg_dt_consume'), ('trg_dt_finalize'), ('trg_permit_guard_dot_tools'),
                   ('trg_permit_guard_delete_dot_tools'), ('trg_permit_guard_truncate_dot_tools')) w(tgname)
      LEFT JOIN pg_catalog.pg_trigger t ON t.tgrelid = to_regclass('public.dot_tools') AND t.tgname = w.tgname
     WHERE to_regclass('public.dot_tools') IS NOT NULL AND t.tgenabled IS DISTINCT FROM 'A'
    UNION ALL
    -- The estate tables admission code reads: plain tables, built-in column types, no rules, no row security.
    SELECT format('%s: %s', c.oid::regclass, CASE WHEN c.relkind <> 'r' THEN 'no longer a plain table'
                                                   WHEN c.relhasrules THEN 'rules' ELSE 'row level security' END)
      FROM pg_catalog.pg_class c
     WHERE c.oid IN (to_regclass('public.dot_tools'), to_regclass('public.birth_registry'), to_regclass('public.meta_catalog'),
                     to_regclass('public.dot_config'))
       AND (c.relkind <> 'r' OR c.relhasrules OR c.relrowsecurity)
    UNION ALL
    SELECT format('%s.%s has type %s, not a built-in type', a.attrelid::regclass, a.attname, format_type(a.atttypid, a.atttypmod))
      FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
     WHERE a.attrelid IN (to_regclass('public.dot_tools'), to_regclass('public.birth_registry'), to_regclass('public.meta_catalog'),
                          to_regclass('public.dot_config'))
       AND a.attnum > 0 AND NOT a.attisdropped AND ty.typnamespace <> 'pg_catalog'::regnamespace
  ) x;
  IF v_why IS NULL AND to_regclass('public.birth_registry') IS NOT NULL THEN
    BEGIN
      PERFORM public.fn_admission_estate_write_check();
    EXCEPTION WHEN SQLSTATE 'BG403' THEN
      v_why := SQLERRM;
    END;
  END IF;
  IF v_why IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('%s refused: the admission depends on it (%s)', TG_TAG, left(v_why, 500)),
      HINT = 'SECURITY.md: only a superuser may change this, and the drift watch then reports it';
  END IF;
END;
$$;
REVOKE ALL ON FUNCTION public.fn_admission_protect_estate() FROM PUBLIC;
ALTER FUNCTION public.fn_admission_protect_estate() OWNER TO birthgate_owner;
CREATE EVENT TRIGGER trg_birthgate_protect_estate ON ddl_command_end
  WHEN TAG IN ('ALTER TABLE', 'CREATE TRIGGER', 'ALTER TRIGGER', 'DROP TRIGGER', 'CREATE RULE', 'CREATE POLICY',
               'ALTER POLICY', 'CREATE INDEX', 'ALTER INDEX', 'CREATE TABLE AS', 'CREATE VIEW', 'DROP TABLE', 'DROP RULE')
  EXECUTE FUNCTION public.fn_admission_protect_estate();
ALTER EVENT TRIGGER trg_birthgate_protect_estate ENABLE ALWAYS;

-- birth_registry must be trustworthy to write before the finalize may write it (refuses the step if not).
SELECT public.fn_admission_estate_write_check();

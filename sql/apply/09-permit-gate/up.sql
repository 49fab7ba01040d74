-- KB-7D57 step 9: the permit gate on dot_tools, "policy-flag form" — it enforces only when the family
-- flag birth_admission_required is set for the family (step 11), so families without the flag are
-- untouched (KB-7D57 test plan "other families unaffected"). Additive: the global fn_birth_gate is
-- not modified (KB-3A66 §4).
--
-- SECURITY.md: every function here is owned by birthgate_owner, pins search_path to pg_catalog,
-- pg_temp, names every relation by schema and never calls code the estate owner controls.

-- The admission's own family switches. KB-7D57 step 11 names the flag "dot_config
-- birth_admission_required"; dot_config belongs to the estate owner, who could delete the row or set
-- it to a non-boolean and open the gate for everyone. The gate reads this birthgate-owned table
-- instead (boolean, NOT NULL); step 11 mirrors the flag into dot_config for the estate's readers, and
-- the drift watch reports any difference between the two.
CREATE TABLE public.birth_admission_family (
  collection_name text PRIMARY KEY,
  required        boolean NOT NULL DEFAULT false,   -- birth_admission_required: no permit, no row
  halted          boolean NOT NULL DEFAULT false,   -- the kill switch: no admission at all, no break-glass
  cutoff_at       timestamptz,                      -- when required was set (the data-level invariants' start)
  updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_by      text NOT NULL DEFAULT session_user
);
COMMENT ON TABLE public.birth_admission_family IS
  'KB-7D57 step 9/11: per-family admission switches (required = birth_admission_required, halted = kill switch). Written only by the packet and fn_admission_family_set (operators).';

-- The gate's view of the drift watch (step 16 fills it): how many findings the last computation saw.
-- One row; the gate refuses every insert while findings > 0 (gate_drift is a hard blocker, enforced
-- in the database, not only in the workflow). It also holds the last computation's blocking dims, which
-- the admission's preflight reuses while they are fresh (step 16, fn_admission_dims_recent): younger
-- than reuse_for, and no DDL recorded since (ddl_seen, the DDL ledger's newest id then).
CREATE TABLE public.birth_admission_guard (
  singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  findings       integer NOT NULL DEFAULT 0 CHECK (findings >= 0),
  detail         text NOT NULL DEFAULT 'none',
  computed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  computed_by    text NOT NULL DEFAULT session_user,
  dims           jsonb,
  ddl_seen       bigint,
  reuse_for      interval NOT NULL DEFAULT '5 seconds' CHECK (reuse_for BETWEEN '0 seconds' AND '1 minute')
);
INSERT INTO public.birth_admission_guard DEFAULT VALUES;

-- The family flag, read in one place (KB-4410 §F: per family, never a global flip).
-- plpgsql, not sql: the SET clause keeps a SQL function from being inlined, and PostgreSQL 16 then
-- parses and plans its query on every call (every gated insert); plpgsql keeps the plan.
CREATE FUNCTION public.fn_family_flag(p_collection_name text, p_key text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v boolean;
BEGIN
  SELECT CASE p_key WHEN 'birth_admission_required' THEN f.required WHEN 'admission_halted' THEN f.halted END
    INTO v FROM public.birth_admission_family f WHERE f.collection_name = p_collection_name;
  IF FOUND THEN
    RETURN coalesce(v, false);
  END IF;
  -- Fail closed: a family whose flag was set (its entry state was recorded by step 11) stays governed
  -- when its row disappears (a superuser's DELETE); the drift watch reports the missing row.
  IF p_key = 'birth_admission_required' AND to_regclass('public.birth_admission_entry') IS NOT NULL THEN
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM public.birth_admission_entry e WHERE e.collection_name = $1)' INTO v USING p_collection_name;
    RETURN v;
  END IF;
  RETURN false;
END;
$$;

-- The stop-conditions the gate checks for every insert of a flagged family. The kill switch and
-- gate_drift are hard: no permit and no break-glass admits past them. Step 13 adds the registry-driven
-- code rule, step 15 its break-glass exemption (each restores this body on rollback).
CREATE FUNCTION public.fn_admission_precheck(p_collection_name text, p_entity_code text, p_break_glass_id bigint)
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

-- The permit a row of this code may consume: RESERVED, for exactly (code, collection), locked.
-- NULL when there is none; the caller says why.
CREATE FUNCTION public.fn_admission_refusal(p_collection_name text, p_entity_code text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_seen record;
BEGIN
  -- Say why: the latest permit for this code here, else one for this code in another collection.
  SELECT p.permit_id, p.state, p.collection_name INTO v_seen
    FROM public.birth_admission_permit p
   WHERE p.entity_code = p_entity_code
   ORDER BY (p.collection_name = p_collection_name) DESC, p.permit_id DESC
   LIMIT 1;
  RETURN CASE
    WHEN v_seen.permit_id IS NULL THEN 'no birth permit exists for this code'
    WHEN v_seen.collection_name <> p_collection_name THEN
      format('the only permit for this code (%s) is for collection %s', v_seen.permit_id, v_seen.collection_name)
    WHEN v_seen.state IN ('CONSUMED', 'FINALIZED') THEN
      format('permit %s was already consumed (%s)', v_seen.permit_id, v_seen.state)
    ELSE format('permit %s is %s', v_seen.permit_id, v_seen.state)
  END;
END;
$$;

-- DESIGN §3 gate, BEFORE INSERT: a RESERVED, unexpired permit for exactly (NEW.code, 'dot_tools') must
-- exist; it is locked here (FOR UPDATE serialises two inserts racing for one permit: the second waits,
-- then finds it CONSUMED and is refused). Nothing is consumed yet: a row skipped by ON CONFLICT never
-- reaches the AFTER trigger below, so it consumes nothing. The stop-conditions (kill switch,
-- gate_drift, family code rule) are checked once, by the AFTER trigger, on the row as stored.
CREATE FUNCTION public.fn_dot_tools_permit_gate()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v public.birth_admission_permit;
  v_found boolean;
BEGIN
  IF NOT public.fn_family_flag('dot_tools', 'birth_admission_required') THEN
    RETURN NEW;
  END IF;
  IF NEW.code IS NULL OR btrim(NEW.code::text) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = 'dot_tools insert refused: the row has no code, so no birth permit can match it';
  END IF;
  SELECT * INTO v FROM public.birth_admission_permit p
   WHERE p.entity_code = NEW.code::text AND p.collection_name = 'dot_tools' AND p.state = 'RESERVED'
   FOR UPDATE;
  v_found := FOUND;
  IF NOT v_found THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('dot_tools insert of %s refused: %s', left(NEW.code::text, 80),
                       public.fn_admission_refusal('dot_tools', NEW.code::text)),
      HINT = 'issue a permit with fn_permit_issue (dot-birth-admit) before inserting';
  END IF;
  IF v.expires_at <= clock_timestamp() THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('dot_tools insert of %s refused: permit %s expired at %s', left(NEW.code::text, 80),
                       v.permit_id, v.expires_at),
      HINT = 'issue a new permit; the expiry sweep will mark this one EXPIRED';
  END IF;
  RETURN NEW;
END;
$$;

-- DESIGN §3 consume, AFTER INSERT ROW: fires only for a row that really was inserted, and sees it as
-- stored (after every BEFORE trigger, whatever its name), so the permit is consumed for exactly that
-- row's id and code. A later BEFORE trigger that changed the code finds no permit here: refused.
CREATE FUNCTION public.fn_dot_tools_permit_consume()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v public.birth_admission_permit;
BEGIN
  IF NOT public.fn_family_flag('dot_tools', 'birth_admission_required') THEN
    RETURN NULL;
  END IF;
  SELECT * INTO v FROM public.birth_admission_permit p
   WHERE p.entity_code = NEW.code::text AND p.collection_name = 'dot_tools' AND p.state = 'RESERVED'
   FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('dot_tools insert of %s refused: %s', left(coalesce(NEW.code::text, 'NULL'), 80),
                       public.fn_admission_refusal('dot_tools', NEW.code::text)),
      DETAIL = 'the row as stored has no RESERVED permit (its code changed after the permit gate?)';
  END IF;
  PERFORM public.fn_admission_precheck('dot_tools', NEW.code::text, v.break_glass_id);
  IF v.expires_at <= clock_timestamp() THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('dot_tools insert of %s refused: permit %s expired at %s', left(NEW.code::text, 80),
                       v.permit_id, v.expires_at);
  END IF;
  -- One write: the move to CONSUMED links the row in the same UPDATE and stamps this transaction.
  PERFORM public.fn_permit_move(v.permit_id, 'CONSUMED', session_user,
                                format('consumed by dot_tools insert, row %s', NEW.id), p_row_id => NEW.id::bigint);
  RETURN NULL;
END;
$$;

-- DESIGN §3: while the flag is set a governed row's code cannot change (an UPDATE of code would birth
-- the new code with no permit), and a row admitted in a transaction cannot be deleted before that
-- transaction commits — the admission's own rollback aside (fn_admission_rollback stamps the permit's
-- rollback_txid first). A role that is not a member of the table's owner (the worker) deletes a
-- governed row only on that rollback path; the estate owner keeps its ordinary deletes of older rows
-- (their births then show as phantoms in the safety net). AFTER UPDATE: sees the row as stored.
CREATE FUNCTION public.fn_dot_tools_row_guard()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v public.birth_admission_permit;
BEGIN
  IF NOT public.fn_family_flag('dot_tools', 'birth_admission_required') THEN
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NULL END;
  END IF;
  IF TG_OP = 'TRUNCATE' THEN
    IF EXISTS (SELECT 1 FROM public.birth_admission_permit p
                WHERE p.collection_name = 'dot_tools' AND p.consumed_txid = pg_current_xact_id()) THEN
      RAISE EXCEPTION USING ERRCODE = 'BG403',
        MESSAGE = 'dot_tools truncate refused: rows admitted in this transaction cannot be removed before it commits';
    END IF;
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF OLD.code::text IS DISTINCT FROM NEW.code::text THEN
      RAISE EXCEPTION USING ERRCODE = 'BG403',
        MESSAGE = format('dot_tools update refused: the code of a governed row cannot change (%s → %s)',
                         left(coalesce(OLD.code::text, 'NULL'), 80), left(coalesce(NEW.code::text, 'NULL'), 80)),
        HINT = 'admit the new code as a new row with its own permit; retire the old one';
    END IF;
    IF OLD.id IS DISTINCT FROM NEW.id THEN
      RAISE EXCEPTION USING ERRCODE = 'BG403',
        MESSAGE = format('dot_tools update refused: the id of governed row %s cannot change', OLD.id);
    END IF;
    RETURN NULL;
  END IF;
  -- DELETE
  SELECT * INTO v FROM public.birth_admission_permit p
   WHERE p.collection_name = 'dot_tools' AND p.row_id = OLD.id::bigint AND p.state IN ('CONSUMED', 'FINALIZED')
   ORDER BY p.permit_id DESC LIMIT 1;
  IF FOUND AND v.rollback_txid = pg_current_xact_id() AND v.entity_code = OLD.code::text THEN
    RETURN OLD;  -- the admission's own rollback (fn_admission_rollback)
  END IF;
  IF FOUND AND v.consumed_txid = pg_current_xact_id() THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('dot_tools delete of %s refused: the row was admitted in this transaction (permit %s) and cannot be removed before it commits',
                       left(OLD.code::text, 80), v.permit_id);
  END IF;
  -- session_user: inside this SECURITY DEFINER function current_user is birthgate_owner; the login
  -- that deletes is the session's (a SET ROLE to a lesser role does not widen it).
  IF NOT pg_has_role(session_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('dot_tools delete of %s refused: %s removes a governed row only through fn_admission_rollback',
                       left(OLD.code::text, 80), session_user);
  END IF;
  RETURN OLD;
END;
$$;

REVOKE ALL ON FUNCTION public.fn_dot_tools_permit_gate() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_dot_tools_permit_consume() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_dot_tools_row_guard() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_family_flag(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_admission_precheck(text, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_admission_refusal(text, text) FROM PUBLIC;
REVOKE ALL ON TABLE public.birth_admission_family, public.birth_admission_guard FROM PUBLIC;

-- Name order puts the gate after trg_auto_code_dot_tools and trg_before_birth_gate_dot_tools: Postgres
-- fires same-timing triggers by name, so NEW.code is already generated (KB-2590 §5).
CREATE TRIGGER trg_permit_gate_dot_tools
  BEFORE INSERT ON public.dot_tools
  FOR EACH ROW EXECUTE FUNCTION public.fn_dot_tools_permit_gate();
-- Named to sort before trg_dt_finalize: under SET CONSTRAINTS … IMMEDIATE the finalize fires with the
-- other AFTER triggers at the end of the statement, in name order, and must find the permit consumed.
CREATE TRIGGER trg_dt_consume
  AFTER INSERT ON public.dot_tools
  FOR EACH ROW EXECUTE FUNCTION public.fn_dot_tools_permit_consume();
CREATE TRIGGER trg_permit_guard_dot_tools
  AFTER UPDATE ON public.dot_tools
  FOR EACH ROW EXECUTE FUNCTION public.fn_dot_tools_row_guard();
CREATE TRIGGER trg_permit_guard_delete_dot_tools
  BEFORE DELETE ON public.dot_tools
  FOR EACH ROW EXECUTE FUNCTION public.fn_dot_tools_row_guard();
CREATE TRIGGER trg_permit_guard_truncate_dot_tools
  BEFORE TRUNCATE ON public.dot_tools
  FOR EACH STATEMENT EXECUTE FUNCTION public.fn_dot_tools_row_guard();

-- DESIGN §3: ENABLE ALWAYS, else SET session_replication_role = replica skips them silently.
ALTER TABLE public.dot_tools ENABLE ALWAYS TRIGGER trg_permit_gate_dot_tools;
ALTER TABLE public.dot_tools ENABLE ALWAYS TRIGGER trg_dt_consume;
ALTER TABLE public.dot_tools ENABLE ALWAYS TRIGGER trg_permit_guard_dot_tools;
ALTER TABLE public.dot_tools ENABLE ALWAYS TRIGGER trg_permit_guard_delete_dot_tools;
ALTER TABLE public.dot_tools ENABLE ALWAYS TRIGGER trg_permit_guard_truncate_dot_tools;

ALTER TABLE public.birth_admission_family OWNER TO birthgate_owner;
ALTER TABLE public.birth_admission_guard OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_family_flag(text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_precheck(text, text, bigint) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_refusal(text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_dot_tools_permit_gate() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_dot_tools_permit_consume() OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_dot_tools_row_guard() OWNER TO birthgate_owner;

-- SECURITY.md hole 5/10: the estate's own trigger functions on dot_tools run inside every admission with
-- the inserting role's rights and the session's search_path — a worker session with
-- `SET search_path = pg_temp, public` and a temp table named registry_changelog redirected its audit
-- row. Pin each one that has no search_path of its own (pg_temp last: never searched for functions or
-- operators, and after public for tables); the rollback resets exactly those.
CREATE TABLE public.birth_admission_pinned (
  fn        regprocedure PRIMARY KEY,
  pinned_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
DO $$
DECLARE
  v_fn regprocedure;
BEGIN
  FOR v_fn IN
    SELECT DISTINCT p.oid::regprocedure
      FROM pg_catalog.pg_proc p
     WHERE (p.oid IN (SELECT t.tgfoid FROM pg_catalog.pg_trigger t
                       WHERE t.tgrelid = 'public.dot_tools'::regclass AND NOT t.tgisinternal)
            OR p.oid = to_regprocedure('public.fn_pre_birth_check(text,text,text,text)'))
       AND pg_catalog.pg_get_userbyid(p.proowner) <> 'birthgate_owner'
       AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}'::text[])) c WHERE c LIKE 'search_path=%')
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, public, pg_temp', v_fn);
    INSERT INTO public.birth_admission_pinned (fn) VALUES (v_fn);
  END LOOP;
END
$$;
REVOKE ALL ON TABLE public.birth_admission_pinned FROM PUBLIC;
ALTER TABLE public.birth_admission_pinned OWNER TO birthgate_owner;

-- KB-4410 §D.5 / KB-35E7 §4.5: the retire mechanism. fn_retire_gate_check (the safety check) exists;
-- missing were a status vocabulary with a CHECK and the transition function. Needed for the 6
-- REAL_MISSING phantoms (KB-3A66 §9.5).

-- The vocabulary. NOT VALID then VALIDATE (pgroll style): the ADD takes its lock only for the catalog
-- change; VALIDATE scans 1.1M rows under SHARE UPDATE EXCLUSIVE, which lets writes go on.
ALTER TABLE public.birth_registry
  ADD CONSTRAINT birth_registry_status_check CHECK (status IN ('born', 'retired')) NOT VALID;
ALTER TABLE public.birth_registry VALIDATE CONSTRAINT birth_registry_status_check;

-- Every status move, modelled on iu_gate_transition like the permit log.
CREATE TABLE public.birth_status_transition (
  transition_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  birth_id      bigint NOT NULL,
  entity_code   text NOT NULL,
  collection_name text NOT NULL,
  from_status   text,
  to_status     text NOT NULL,
  actor         text NOT NULL,
  reason        text NOT NULL,
  at            timestamptz NOT NULL DEFAULT clock_timestamp(),
  txid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
  session_role  text NOT NULL DEFAULT session_user
);
REVOKE ALL ON TABLE public.birth_status_transition FROM PUBLIC;

-- born → retired (internal; the two callers below decide who may). The checks of the estate's
-- fn_retire_gate_check, made here rather than called: that function belongs to the estate owner, and
-- calling it from SECURITY DEFINER code would run the estate owner's code with birthgate_owner's rights
-- (SECURITY.md). Reading the family's rows needs SELECT on its table: without it the retire refuses.
CREATE FUNCTION public.fn_birth_retire_checked(p_birth_id bigint, p_actor text, p_reason text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v record;
  v_fail text[] := '{}';
  v_has_row boolean := false;
  v_children bigint;
BEGIN
  PERFORM public.fn_admission_estate_write_check();
  SELECT b.id, b.entity_code::text AS code, b.collection_name::text AS coll, b.status::text AS status
    INTO v FROM public.birth_registry b WHERE b.id = p_birth_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('birth %s does not exist', p_birth_id);
  END IF;
  IF v.status = 'retired' THEN
    RETURN v.id;  -- idempotent
  END IF;
  IF v.status IS DISTINCT FROM 'born' THEN
    v_fail := v_fail || format('status_born (status %s)', coalesce(v.status, '<none>'));
  END IF;
  SELECT EXISTS (SELECT 1 FROM public.meta_catalog mc WHERE mc.collection_name = v.coll)
         AND to_regclass(format('public.%I', v.coll)) IS NOT NULL INTO v_has_row;
  IF v_has_row THEN
    IF NOT has_table_privilege(format('public.%I', v.coll), 'SELECT') THEN
      RAISE EXCEPTION USING ERRCODE = 'BG428',
        MESSAGE = format('retire of %s refused: birthgate_owner cannot read %s to prove the row is gone', left(v.code, 80), v.coll),
        HINT = format('GRANT SELECT ON public.%I TO birthgate_owner', v.coll);
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM public.%I t WHERE %s = $1)', v.coll,
                   (SELECT CASE WHEN mc.code_field IS NOT NULL THEN format('t.%I::text', mc.code_field)
                                ELSE format('(%L || '':'' || t.%I::text)', v.coll, coalesce(mc.id_field, 'id')) END
                      FROM public.meta_catalog mc WHERE mc.collection_name = v.coll))
      INTO v_has_row USING v.code;
  END IF;
  IF v_has_row THEN
    v_fail := v_fail || 'row_absent (the row still exists; only a phantom may be retired)'::text;
  END IF;
  SELECT count(*) INTO v_children FROM public.birth_registry b WHERE b.parent_code = v.code;
  IF v_children > 0 THEN
    v_fail := v_fail || format('no_children (%s births name it as parent)', v_children);
  END IF;
  IF cardinality(v_fail) > 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('retire of %s in %s refused by the retire gate: %s', left(v.code, 80), v.coll, array_to_string(v_fail, '; '));
  END IF;
  UPDATE public.birth_registry b SET status = 'retired' WHERE b.id = v.id;
  INSERT INTO public.birth_status_transition (birth_id, entity_code, collection_name, from_status, to_status, actor, reason)
  VALUES (v.id, v.code, v.coll, v.status, 'retired', p_actor, p_reason);
  RETURN v.id;
END;
$$;

-- The operators' retire (REAL_MISSING phantoms, KB-3A66 §9.5): born → retired when every retire-gate
-- check passes (BG428 names the failing ones). Idempotent. EXECUTE: birthgate_operator only — the
-- worker retires nothing but its own admission's birth, through fn_admission_rollback.
CREATE FUNCTION public.fn_birth_retire(p_entity_code text, p_collection_name text, p_actor text, p_reason text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM public.fn_admission_require_text('entity_code', p_entity_code, 200);
  PERFORM public.fn_admission_require_text('collection_name', p_collection_name, 200);
  PERFORM public.fn_admission_require_text('actor', p_actor, 200);
  PERFORM public.fn_admission_require_text('reason', p_reason, 2000, true);
  SELECT b.id INTO v_id FROM public.birth_registry b
   WHERE b.entity_code = p_entity_code AND b.collection_name = p_collection_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('no birth of %s in collection %s', left(p_entity_code, 80), left(p_collection_name, 80));
  END IF;
  RETURN public.fn_birth_retire_checked(v_id, p_actor, p_reason);
END;
$$;

-- DESIGN §4 "compensations … remove or retire what was written": undo a FINALIZED admission in one
-- transaction, in three moves so that the governed row is deleted with the caller's rights (the
-- estate's DELETE triggers never run as birthgate_owner) and only on this path:
--   1. fn_admission_rollback_authorize (DEFINER): the permit is FINALIZED with its row and its live
--      birth; stamps the permit's rollback_txid, which the row guard (step 9) honours for exactly that
--      row, in this transaction only;
--   2. the DELETE, by id AND code (a replayed rollback never deletes another admission's row);
--   3. fn_admission_rollback_complete (DEFINER): the row is gone, the birth is retired (logged).
-- The permit stays FINALIZED: terminal, and its transition log plus birth_status_transition are the
-- record. Idempotent: row already gone and birth already retired → the birth id again.
CREATE FUNCTION public.fn_admission_rollback_authorize(p_permit_id bigint, p_actor text, p_reason text)
RETURNS TABLE (collection_name text, id_field text, code_field text, row_id bigint, entity_code text, birth_id bigint, done boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v public.birth_admission_permit;
  v_birth record;
BEGIN
  IF p_permit_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'permit_id must not be NULL';
  END IF;
  PERFORM public.fn_admission_require_text('actor', p_actor, 200);
  PERFORM public.fn_admission_require_text('reason', p_reason, 2000, true);
  SELECT * INTO v FROM public.birth_admission_permit p WHERE p.permit_id = p_permit_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('permit %s does not exist', p_permit_id);
  END IF;
  IF v.state <> 'FINALIZED' OR v.row_id IS NULL OR v.birth_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('permit %s is %s: only a FINALIZED admission with its row and birth is rolled back', v.permit_id, v.state),
      HINT = 'a live permit is withdrawn with fn_permit_transition (CANCELLED or FAILED)';
  END IF;
  SELECT b.id, b.status::text AS status, b.entity_id, b.entity_code::text AS code INTO v_birth
    FROM public.birth_registry b WHERE b.id = v.birth_id;
  IF NOT FOUND OR v_birth.code IS DISTINCT FROM v.entity_code THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('permit %s: its birth %s is not the birth of %s', v.permit_id, v.birth_id, left(v.entity_code, 80));
  END IF;
  collection_name := v.collection_name; entity_code := v.entity_code; row_id := v.row_id; birth_id := v.birth_id;
  SELECT coalesce(mc.id_field::text, 'id'), coalesce(mc.code_field::text, 'code') INTO id_field, code_field
    FROM public.meta_catalog mc WHERE mc.collection_name = v.collection_name;
  IF v_birth.status = 'retired' THEN
    done := true;  -- rolled back before (or re-admitted and rolled back): nothing to delete
    RETURN NEXT;
    RETURN;
  END IF;
  IF v_birth.status IS DISTINCT FROM 'born' OR v_birth.entity_id IS DISTINCT FROM v.row_id THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('permit %s: birth %s is %s for row %s, not the live birth of row %s', v.permit_id, v.birth_id,
                       coalesce(v_birth.status, 'NULL'), coalesce(v_birth.entity_id::text, 'NULL'), v.row_id);
  END IF;
  UPDATE public.birth_admission_permit p SET rollback_txid = pg_current_xact_id(), updated_at = clock_timestamp()
   WHERE p.permit_id = v.permit_id;
  INSERT INTO public.birth_admission_permit_transition (permit_id, from_state, to_state, actor, reason)
  VALUES (v.permit_id, 'FINALIZED', 'FINALIZED', p_actor, format('rollback: %s', left(p_reason, 1900)));
  done := false;
  RETURN NEXT;
END;
$$;

CREATE FUNCTION public.fn_admission_rollback_complete(p_permit_id bigint, p_actor text, p_reason text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v public.birth_admission_permit;
BEGIN
  SELECT * INTO v FROM public.birth_admission_permit p WHERE p.permit_id = p_permit_id FOR UPDATE;
  IF NOT FOUND OR v.state <> 'FINALIZED' OR v.birth_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428', MESSAGE = format('permit %s is not a FINALIZED admission', p_permit_id);
  END IF;
  IF (SELECT b.status::text FROM public.birth_registry b WHERE b.id = v.birth_id) = 'retired' THEN
    RETURN v.birth_id;
  END IF;
  IF v.rollback_txid IS DISTINCT FROM pg_current_xact_id() THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('permit %s: the rollback was not authorised in this transaction (fn_admission_rollback_authorize)', p_permit_id);
  END IF;
  RETURN public.fn_birth_retire_checked(v.birth_id, p_actor, p_reason);
END;
$$;

-- The compensation the worker calls. SECURITY INVOKER: the DELETE runs with the caller's rights.
CREATE FUNCTION public.fn_admission_rollback(p_permit_id bigint, p_actor text, p_reason text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  a record;
BEGIN
  SELECT * INTO a FROM public.fn_admission_rollback_authorize(p_permit_id, p_actor, p_reason);
  IF a.done THEN
    RETURN a.birth_id;
  END IF;
  EXECUTE format('DELETE FROM public.%I WHERE %I = $1 AND %I::text = $2', a.collection_name, a.id_field, a.code_field)
    USING a.row_id, a.entity_code;
  RETURN public.fn_admission_rollback_complete(p_permit_id, p_actor, p_reason);
END;
$$;

REVOKE ALL ON FUNCTION public.fn_birth_retire_checked(bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_birth_retire(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_admission_rollback_authorize(bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_admission_rollback_complete(bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_admission_rollback(bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.fn_birth_retire(text, text, text, text) TO birthgate_operator;

-- Issue 7 hole 8: a retired birth is not a REAL_MISSING phantom (its row is gone on purpose, on the
-- record). OID-stable body swap of the estate's fn_birth_phantoms; the rollback restores the entry body.
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
          AND b.status IS DISTINCT FROM ''retired''
          AND NOT EXISTS (SELECT 1 FROM %I t WHERE %s = b.entity_code)',
      m.collection_name, m.collection_name, v_code);
  END LOOP;
  RETURN QUERY
    SELECT b.collection_name::text, b.entity_code::text, b.id, coalesce(b.jsonb_profile ->> 'synthetic' = 'true', false)
      FROM birth_registry b
     WHERE b.status IS DISTINCT FROM 'retired'
       AND NOT EXISTS (SELECT 1 FROM meta_catalog mc
                        WHERE mc.collection_name = b.collection_name
                          AND to_regclass(quote_ident(mc.collection_name)) IS NOT NULL);
END
$fn$;

ALTER TABLE public.birth_status_transition OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_birth_retire_checked(bigint, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_birth_retire(text, text, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_rollback_authorize(bigint, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_rollback_complete(bigint, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_rollback(bigint, text, text) OWNER TO birthgate_owner;

SELECT public.fn_drift_capture_step('step-14');

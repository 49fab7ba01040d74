-- KB-4410 §D.5 / KB-35E7 §4.5: the retire mechanism. fn_retire_gate_check (the safety check) exists;
-- missing were a status vocabulary with a CHECK and the transition function. Needed for the 6
-- REAL_MISSING phantoms (KB-3A66 §9.5).

-- The vocabulary. NOT VALID then VALIDATE (pgroll style): the ADD takes its lock only for the catalog
-- change; VALIDATE scans 1.1M rows under SHARE UPDATE EXCLUSIVE, which lets writes go on.
ALTER TABLE birth_registry
  ADD CONSTRAINT birth_registry_status_check CHECK (status IN ('born', 'retired')) NOT VALID;
ALTER TABLE birth_registry VALIDATE CONSTRAINT birth_registry_status_check;

-- Every status move, modelled on iu_gate_transition like the permit log.
CREATE TABLE birth_status_transition (
  transition_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  birth_id      bigint NOT NULL,
  entity_code   text NOT NULL,
  collection_name text NOT NULL,
  from_status   text,
  to_status     text NOT NULL,
  actor         text NOT NULL,
  reason        text NOT NULL,
  at            timestamptz NOT NULL DEFAULT clock_timestamp(),
  txid          xid8 NOT NULL DEFAULT pg_current_xact_id()
);
REVOKE ALL ON TABLE birth_status_transition FROM PUBLIC;

-- born → retired, only when every fn_retire_gate_check passes (BG428 names the failing checks).
-- Idempotent: a retired birth returns its id unchanged.
CREATE FUNCTION fn_birth_retire(p_entity_code text, p_collection_name text, p_actor text, p_reason text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  v_id bigint;
  v_status text;
  v_failed text;
BEGIN
  PERFORM fn_admission_require_text('entity_code', p_entity_code, 200);
  PERFORM fn_admission_require_text('collection_name', p_collection_name, 200);
  PERFORM fn_admission_require_text('actor', p_actor, 200);
  PERFORM fn_admission_require_text('reason', p_reason, 2000, true);

  SELECT b.id, b.status INTO v_id, v_status FROM birth_registry b
   WHERE b.entity_code = p_entity_code AND b.collection_name = p_collection_name
   FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('no birth of %s in collection %s', left(p_entity_code, 80), left(p_collection_name, 80));
  END IF;
  IF v_status = 'retired' THEN
    RETURN v_id;
  END IF;

  SELECT string_agg(format('%s (%s)', c.check_name, c.detail), '; ')
    INTO v_failed
    FROM fn_retire_gate_check(p_collection_name, p_entity_code) c
   WHERE NOT c.passed;
  IF v_failed IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('retire of %s in %s refused by fn_retire_gate_check: %s', left(p_entity_code, 80), p_collection_name, v_failed);
  END IF;

  UPDATE birth_registry
     SET status = 'retired', updated_at = now(),
         jsonb_profile = coalesce(jsonb_profile, '{}'::jsonb)
                         || jsonb_build_object('retired', jsonb_build_object('actor', p_actor, 'reason', p_reason, 'at', now()))
   WHERE id = v_id;
  INSERT INTO birth_status_transition (birth_id, entity_code, collection_name, from_status, to_status, actor, reason)
  VALUES (v_id, p_entity_code, p_collection_name, v_status, 'retired', p_actor, p_reason);
  RETURN v_id;
END;
$$;
REVOKE ALL ON FUNCTION fn_birth_retire(text, text, text, text) FROM PUBLIC;

-- DESIGN §4 "compensations … remove or retire what was written": undo a FINALIZED admission in one
-- transaction — delete the governed row (its audit trigger keeps the history in registry_changelog),
-- then retire the birth through fn_birth_retire, whose row_absent check now passes. The permit stays
-- FINALIZED: terminal, and its transition log plus birth_status_transition are the record.
-- Idempotent: row already gone and birth already retired → the birth id again.
CREATE FUNCTION fn_admission_rollback(p_permit_id bigint, p_actor text, p_reason text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  v birth_admission_permit;
  v_id_field text;
BEGIN
  IF p_permit_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'permit_id must not be NULL';
  END IF;
  PERFORM fn_admission_require_text('actor', p_actor, 200);
  PERFORM fn_admission_require_text('reason', p_reason, 2000, true);

  SELECT * INTO v FROM birth_admission_permit WHERE permit_id = p_permit_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('permit %s does not exist', p_permit_id);
  END IF;
  IF v.state <> 'FINALIZED' OR v.row_id IS NULL OR v.birth_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('permit %s is %s: only a FINALIZED admission with its row and birth is rolled back', v.permit_id, v.state),
      HINT = 'a live permit is withdrawn with fn_permit_transition (CANCELLED or FAILED)';
  END IF;

  SELECT mc.id_field INTO v_id_field FROM meta_catalog mc WHERE mc.collection_name = v.collection_name;
  EXECUTE format('DELETE FROM public.%I WHERE %I = $1', v.collection_name, coalesce(v_id_field, 'id')) USING v.row_id;
  RETURN fn_birth_retire(v.entity_code, v.collection_name, p_actor, p_reason);
END;
$$;
REVOKE ALL ON FUNCTION fn_admission_rollback(bigint, text, text) FROM PUBLIC;

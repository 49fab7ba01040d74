-- KB-7D57 step 10: the deferred finalize on dot_tools, the live trg_iu_birth_gate_layer2 shape
-- (KB-2590 §6): a CONSTRAINT TRIGGER … DEFERRABLE INITIALLY DEFERRED that re-reads the row by id at
-- the commit boundary. Everything it writes belongs to the inserting transaction, so a rollback
-- (even after SET CONSTRAINTS … IMMEDIATE) returns the permit to RESERVED and FINALIZED means
-- "finalized in a committed transaction" (DESIGN §3).

-- KB-3A66 §7: mark the existing birth row finalized, never insert a second birth; CONSUMED →
-- FINALIZED; a vanished row fails finalize (the RAISE aborts the commit, so the permit stays RESERVED).
CREATE FUNCTION fn_dt_finalize()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  v birth_admission_permit;
  v_code text;
  v_birth_id bigint;
BEGIN
  SELECT * INTO v FROM birth_admission_permit
   WHERE collection_name = TG_TABLE_NAME AND row_id = NEW.id AND state = 'CONSUMED'
   FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;  -- not admitted under a permit (family flag unset): nothing to finalize
  END IF;

  SELECT d.code INTO v_code FROM dot_tools d WHERE d.id = NEW.id;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('finalize of permit %s failed: %s row %s vanished before commit', v.permit_id, TG_TABLE_NAME, NEW.id),
      DETAIL = 'the transaction is aborted; the permit returns to RESERVED';
  END IF;
  IF v_code IS DISTINCT FROM v.entity_code THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('finalize of permit %s failed: %s row %s now has code %s, the permit is for %s',
                       v.permit_id, TG_TABLE_NAME, NEW.id, left(coalesce(v_code, 'NULL'), 80), left(v.entity_code, 80));
  END IF;

  -- The AFTER INSERT birth triggers (fn_birth_registry_auto) ran at the end of the insert statement.
  -- One statement finds, locks and marks the birth row ((entity_code, collection_name) is unique).
  UPDATE birth_registry b
     SET jsonb_profile = coalesce(b.jsonb_profile, '{}'::jsonb)
                         || jsonb_build_object('admission', jsonb_build_object(
                              'permit_id', v.permit_id, 'finalized_at', clock_timestamp(),
                              'break_glass', v.break_glass))
   WHERE b.entity_code = v.entity_code AND b.collection_name = TG_TABLE_NAME
  RETURNING b.id INTO v_birth_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('finalize of permit %s failed: (%s, %s) has no birth row', v.permit_id, left(v.entity_code, 80), TG_TABLE_NAME),
      DETAIL = 'the AFTER INSERT birth trigger did not run; the transaction is aborted';
  END IF;

  -- One write: the move to FINALIZED links the birth in the same UPDATE.
  PERFORM fn_permit_move(v.permit_id, 'FINALIZED', session_user, format('finalized at commit, birth %s', v_birth_id),
                         p_birth_id => v_birth_id);
  RETURN NULL;
END;
$$;

REVOKE ALL ON FUNCTION fn_dt_finalize() FROM PUBLIC;

CREATE CONSTRAINT TRIGGER trg_dt_finalize
  AFTER INSERT ON dot_tools
  DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION fn_dt_finalize();

-- DESIGN §3: ENABLE ALWAYS, else session_replication_role = replica skips finalize silently.
ALTER TABLE dot_tools ENABLE ALWAYS TRIGGER trg_dt_finalize;

-- CONTRACT.md: the admission insert. The code comes from the permit (never from the caller), the
-- other columns from p_fields; the gate and finalize then run as for any insert. Idempotent: a retry
-- after a lost acknowledgement finds the permit FINALIZED and returns the committed row.
CREATE FUNCTION fn_admission_insert_dot_tools(p_permit_id bigint, p_fields jsonb)
RETURNS TABLE (row_id bigint, entity_code text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  v birth_admission_permit;
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
    IF v_key IN ('code', 'id') THEN
      RAISE EXCEPTION USING ERRCODE = 'BG400',
        MESSAGE = format('fields must not set %s: the code comes from the permit, the id from the table', v_key);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute a
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

  SELECT * INTO v FROM birth_admission_permit p WHERE p.permit_id = p_permit_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('permit %s does not exist', p_permit_id);
  END IF;
  IF v.collection_name <> 'dot_tools' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('permit %s is for collection %s, not dot_tools', v.permit_id, v.collection_name);
  END IF;
  IF v.state = 'FINALIZED' THEN
    row_id := v.row_id; entity_code := v.entity_code;
    RETURN NEXT;
    RETURN;
  END IF;
  IF v.state <> 'RESERVED' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('permit %s is %s; only a RESERVED permit admits an insert', v.permit_id, v.state);
  END IF;

  -- dot_tools.name is NOT NULL: without one the row is named by its code (family knowledge kept here).
  -- created_by names the caller, not this function's owner (fn_set_created_by sees current_user).
  v_fields := jsonb_build_object('name', v.entity_code, 'created_by', session_user)
              || p_fields || jsonb_build_object('code', v.entity_code);
  SELECT string_agg(format('%I', k), ', ' ORDER BY k) INTO v_cols FROM jsonb_object_keys(v_fields) k;
  RETURN QUERY EXECUTE format(
    'INSERT INTO dot_tools (%1$s) SELECT %1$s FROM jsonb_populate_record(NULL::dot_tools, $1) RETURNING id::bigint, code::text',
    v_cols) USING v_fields;
END;
$$;

REVOKE ALL ON FUNCTION fn_admission_insert_dot_tools(bigint, jsonb) FROM PUBLIC;

-- KB-7D57 step 9: the permit gate on dot_tools, "policy-flag form" — it enforces only when the family
-- flag dot_config(dot_tools, birth_admission_required) is true (step 11), so families without the
-- flag are untouched (KB-7D57 test plan "other families unaffected"). Additive: the global
-- fn_birth_gate is not modified (KB-3A66 §4).

-- The family flag, read in one place (KB-4410 §F: per-family dot_config, never a global flip).
-- plpgsql, not sql: the SET clause keeps a SQL function from being inlined, and PostgreSQL 16 then
-- parses and plans its query on every call (every gated insert); plpgsql keeps the plan.
CREATE FUNCTION fn_family_flag(p_collection_name text, p_key text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = public, pg_temp
AS $$
BEGIN
  RETURN coalesce((SELECT c.config_value = 'true'::jsonb
                     FROM dot_config c
                    WHERE c.collection_name = p_collection_name AND c.config_key = p_key), false);
END;
$$;

-- The stop-conditions the gate checks before it consumes a permit. Step 13 adds the registry-driven
-- code rule, step 15 its break-glass exemption (each restores this body on rollback).
CREATE FUNCTION fn_admission_precheck(p_collection_name text, p_entity_code text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = public, pg_temp
AS $$
BEGIN
  IF p_entity_code IS NULL OR btrim(p_entity_code) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('%s insert refused: the row has no code, so no birth permit can match it', p_collection_name);
  END IF;
END;
$$;

-- DESIGN §3 gate: a RESERVED, unexpired permit for exactly (NEW.code, 'dot_tools') → CONSUMED.
-- SECURITY DEFINER: the inserting role (birthgate_worker) has no rights on the permit table.
-- FOR UPDATE serialises two inserts racing for one permit: the second re-reads it as CONSUMED or
-- FINALIZED and is refused, so exactly one wins.
CREATE FUNCTION fn_dot_tools_permit_gate()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  v birth_admission_permit;
  v_seen record;
  v_why text;
BEGIN
  IF NOT fn_family_flag(TG_TABLE_NAME, 'birth_admission_required') THEN
    RETURN NEW;
  END IF;
  PERFORM fn_admission_precheck(TG_TABLE_NAME, NEW.code);

  SELECT * INTO v FROM birth_admission_permit
   WHERE entity_code = NEW.code AND collection_name = TG_TABLE_NAME AND state = 'RESERVED'
   FOR UPDATE;

  IF NOT FOUND THEN
    -- Say why: the latest permit for this code here, else one for this code in another collection.
    SELECT p.permit_id, p.state, p.collection_name INTO v_seen
      FROM birth_admission_permit p
     WHERE p.entity_code = NEW.code
     ORDER BY (p.collection_name = TG_TABLE_NAME) DESC, p.permit_id DESC
     LIMIT 1;
    v_why := CASE
      WHEN v_seen.permit_id IS NULL THEN 'no birth permit exists for this code'
      WHEN v_seen.collection_name <> TG_TABLE_NAME THEN
        format('the only permit for this code (%s) is for collection %s', v_seen.permit_id, v_seen.collection_name)
      WHEN v_seen.state IN ('CONSUMED', 'FINALIZED') THEN
        format('permit %s was already consumed (%s)', v_seen.permit_id, v_seen.state)
      ELSE format('permit %s is %s', v_seen.permit_id, v_seen.state)
    END;
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('%s insert of %s refused: %s', TG_TABLE_NAME, left(NEW.code, 80), v_why),
      HINT = 'issue a permit with fn_permit_issue (dot-birth-admit) before inserting';
  END IF;

  IF v.expires_at <= clock_timestamp() THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('%s insert of %s refused: permit %s expired at %s', TG_TABLE_NAME, left(NEW.code, 80),
                       v.permit_id, v.expires_at),
      HINT = 'issue a new permit; the expiry sweep will mark this one EXPIRED';
  END IF;

  -- One write: the move to CONSUMED links the row in the same UPDATE.
  PERFORM fn_permit_move(v.permit_id, 'CONSUMED', session_user, format('consumed by %s insert, row %s', TG_TABLE_NAME, NEW.id),
                         p_row_id => NEW.id::bigint);
  RETURN NEW;
END;
$$;

REVOKE ALL ON FUNCTION fn_dot_tools_permit_gate() FROM PUBLIC;

-- Name order puts it after trg_auto_code_dot_tools and trg_before_birth_gate_dot_tools: Postgres
-- fires same-timing triggers by name, so NEW.code is already generated (KB-2590 §5).
CREATE TRIGGER trg_permit_gate_dot_tools
  BEFORE INSERT ON dot_tools
  FOR EACH ROW EXECUTE FUNCTION fn_dot_tools_permit_gate();

-- DESIGN §3: ENABLE ALWAYS, else SET session_replication_role = replica skips the gate silently.
ALTER TABLE dot_tools ENABLE ALWAYS TRIGGER trg_permit_gate_dot_tools;

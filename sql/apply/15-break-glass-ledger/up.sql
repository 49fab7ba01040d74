-- KB-7D57 owner checklist "break-glass ledger wiring into the fail-closed guard", DESIGN §4: an
-- operator break-glass (actor, reason, approval id) admits one insert past the stop-conditions.
-- The permit is still required and still consumed; the ledger entry is bound to the transaction
-- that opened it (txid), so it admits that insert only and cannot be replayed later.

CREATE TABLE birth_break_glass (
  break_glass_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity_code     text NOT NULL,
  collection_name text NOT NULL,
  actor           text NOT NULL,
  reason          text NOT NULL,
  approval_id     text NOT NULL,
  workflow_id     text,
  permit_id       bigint NOT NULL REFERENCES birth_admission_permit (permit_id),
  txid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
  opened_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_break_glass_code ON birth_break_glass (entity_code, collection_name, txid);
REVOKE ALL ON TABLE birth_break_glass FROM PUBLIC;

-- CONTRACT.md: call in the same transaction as the insert it admits.
CREATE FUNCTION fn_break_glass_open(p_entity_code text, p_collection_name text, p_actor text, p_reason text,
                                    p_approval_id text, p_permit_id bigint, p_workflow_id text)
RETURNS birth_break_glass
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  v_permit birth_admission_permit;
  v birth_break_glass;
BEGIN
  PERFORM fn_admission_require_text('entity_code', p_entity_code, 200);
  PERFORM fn_admission_require_collection(p_collection_name);
  PERFORM fn_admission_require_text('actor', p_actor, 200);
  PERFORM fn_admission_require_text('reason', p_reason, 2000, true);
  PERFORM fn_admission_require_text('approval_id', p_approval_id, 200);
  IF p_workflow_id IS NOT NULL THEN PERFORM fn_admission_require_text('workflow_id', p_workflow_id, 500); END IF;
  IF p_permit_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'permit_id must not be NULL: a break-glass still needs its permit';
  END IF;

  SELECT * INTO v_permit FROM birth_admission_permit WHERE permit_id = p_permit_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('permit %s does not exist', p_permit_id);
  END IF;
  IF v_permit.entity_code <> p_entity_code OR v_permit.collection_name <> p_collection_name THEN
    RAISE EXCEPTION USING ERRCODE = 'BG409',
      MESSAGE = format('permit %s is for (%s, %s), not for the break-glass target', p_permit_id,
                       left(v_permit.entity_code, 80), v_permit.collection_name);
  END IF;
  IF v_permit.state <> 'RESERVED' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('permit %s is %s; break-glass applies only to a RESERVED permit', p_permit_id, v_permit.state);
  END IF;

  INSERT INTO birth_break_glass (entity_code, collection_name, actor, reason, approval_id, workflow_id, permit_id)
  VALUES (p_entity_code, p_collection_name, p_actor, p_reason, p_approval_id, p_workflow_id, p_permit_id)
  RETURNING * INTO v;
  UPDATE birth_admission_permit SET break_glass = true, break_glass_id = v.break_glass_id, updated_at = clock_timestamp()
   WHERE permit_id = p_permit_id;
  RETURN v;
END;
$$;
REVOKE ALL ON FUNCTION fn_break_glass_open(text, text, text, text, text, bigint, text) FROM PUBLIC;

-- The gate's precheck (step 13 body) gains the exemption: a break-glass opened in this very
-- transaction for this (code, collection) admits a code outside the family rule.
CREATE OR REPLACE FUNCTION fn_admission_precheck(p_collection_name text, p_entity_code text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = public, pg_temp
AS $$
BEGIN
  IF p_entity_code IS NULL OR btrim(p_entity_code) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('%s insert refused: the row has no code, so no birth permit can match it', p_collection_name);
  END IF;
  IF NOT fn_family_code_rule(p_collection_name, p_entity_code)
     AND NOT EXISTS (SELECT 1 FROM birth_break_glass g
                      WHERE g.entity_code = p_entity_code AND g.collection_name = p_collection_name
                        AND g.txid = pg_current_xact_id()) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('%s insert of %s refused: the code does not match the family code rule %s', p_collection_name,
                       left(p_entity_code, 80),
                       coalesce((SELECT mc.code_pattern FROM meta_catalog mc WHERE mc.collection_name = p_collection_name),
                                '^[A-Z]+-[0-9]+$')),
      HINT = 'meta_catalog.code_pattern holds the rule; an operator break-glass admits an exception';
  END IF;
END;
$$;

SELECT fn_drift_capture_baseline('step-15');

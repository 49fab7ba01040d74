-- KB-7D57 owner checklist "break-glass ledger wiring into the fail-closed guard", DESIGN §4: an
-- operator break-glass (actor, reason, approval id) admits one insert past the family code rule.
--
-- SECURITY.md: break-glass is an operator's act. Only birthgate_operator (never the worker) may open
-- an entry; it is bound to one permit — the REQUESTED permit of one parked stuck birth — and records
-- who really opened it (session_user), the approval, the workflow and the blockers it was opened
-- against. The gate's exemption matches on the permit; the kill switch and gate_drift stay hard
-- (fn_admission_precheck checks them before any exemption), and are refused here at open time too.
CREATE TABLE public.birth_break_glass (
  break_glass_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity_code     text NOT NULL,
  collection_name text NOT NULL,
  actor           text NOT NULL,                       -- the human the operator names
  opened_by       text NOT NULL DEFAULT session_user,  -- the database role that really opened it
  reason          text NOT NULL,
  approval_id     text NOT NULL,
  workflow_id     text,
  permit_id       bigint NOT NULL REFERENCES public.birth_admission_permit (permit_id),
  blockers        jsonb NOT NULL DEFAULT '[]'::jsonb,  -- the stuck birth's blockers when the glass was broken
  txid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
  opened_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  CONSTRAINT birth_break_glass_permit_uq UNIQUE (permit_id)
);
CREATE INDEX idx_break_glass_code ON public.birth_break_glass (entity_code, collection_name);
REVOKE ALL ON TABLE public.birth_break_glass FROM PUBLIC;

CREATE FUNCTION public.fn_break_glass_open(p_entity_code text, p_collection_name text, p_actor text, p_reason text,
                                           p_approval_id text, p_permit_id bigint, p_workflow_id text)
RETURNS public.birth_break_glass
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v_permit public.birth_admission_permit;
  v public.birth_break_glass;
  v_blockers jsonb;
  v_guard public.birth_admission_guard;
BEGIN
  PERFORM public.fn_admission_require_text('entity_code', p_entity_code, 200);
  PERFORM public.fn_admission_require_collection(p_collection_name);
  PERFORM public.fn_admission_require_text('actor', p_actor, 200);
  PERFORM public.fn_admission_require_text('reason', p_reason, 2000, true);
  PERFORM public.fn_admission_require_text('approval_id', p_approval_id, 200);
  IF p_workflow_id IS NOT NULL THEN PERFORM public.fn_admission_require_text('workflow_id', p_workflow_id, 500); END IF;
  IF p_permit_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'permit_id must not be NULL: a break-glass still needs its permit';
  END IF;

  SELECT * INTO v_permit FROM public.birth_admission_permit p WHERE p.permit_id = p_permit_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('permit %s does not exist', p_permit_id);
  END IF;
  IF v_permit.entity_code <> p_entity_code OR v_permit.collection_name <> p_collection_name THEN
    RAISE EXCEPTION USING ERRCODE = 'BG409',
      MESSAGE = format('permit %s is for (%s, %s), not for the break-glass target', p_permit_id,
                       left(v_permit.entity_code, 80), v_permit.collection_name);
  END IF;
  IF p_workflow_id IS NOT NULL AND v_permit.workflow_id IS DISTINCT FROM p_workflow_id THEN
    RAISE EXCEPTION USING ERRCODE = 'BG409',
      MESSAGE = format('permit %s belongs to workflow %s, not %s', p_permit_id, coalesce(left(v_permit.workflow_id, 200), 'NULL'),
                       left(p_workflow_id, 200));
  END IF;
  -- One entry per permit: the same approval again returns it (a retried command); another is a conflict.
  SELECT * INTO v FROM public.birth_break_glass g WHERE g.permit_id = p_permit_id;
  IF FOUND THEN
    IF v.approval_id = p_approval_id AND v.actor = p_actor THEN
      RETURN v;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'BG409',
      MESSAGE = format('permit %s already has break-glass entry %s (approval %s)', p_permit_id, v.break_glass_id, left(v.approval_id, 80));
  END IF;
  IF v_permit.state <> 'REQUESTED' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('permit %s is %s; break-glass applies only to the REQUESTED permit of a parked stuck birth', p_permit_id, v_permit.state);
  END IF;

  -- Hard blockers: no break-glass past the kill switch or gate_drift.
  IF public.fn_family_flag(p_collection_name, 'admission_halted') THEN
    RAISE EXCEPTION USING ERRCODE = 'BG423',
      MESSAGE = format('break-glass refused: admissions of %s are halted (kill switch)', p_collection_name);
  END IF;
  SELECT * INTO v_guard FROM public.birth_admission_guard g;
  IF NOT FOUND OR v_guard.findings > 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG423',
      MESSAGE = format('break-glass refused: gate_drift=%s (%s)', coalesce(v_guard.findings::text, 'not computed'),
                       left(coalesce(v_guard.detail, 'guard row missing'), 300));
  END IF;
  -- The blockers the stuck birth shows now, computed here (step 16's preflight, when installed).
  IF to_regprocedure('public.fn_admission_preflight(text,text)') IS NOT NULL THEN
    EXECUTE $q$SELECT public.fn_admission_preflight($1, $2) -> 'blockers'$q$ INTO v_blockers USING p_entity_code, p_collection_name;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(v_blockers, '[]'::jsonb)) b WHERE b ->> 'hard' = 'true') THEN
      RAISE EXCEPTION USING ERRCODE = 'BG423',
        MESSAGE = format('break-glass refused: hard blockers %s', left(v_blockers::text, 500));
    END IF;
  ELSE
    v_blockers := CASE WHEN public.fn_family_code_rule(p_collection_name, p_entity_code) THEN '[]'::jsonb
                       ELSE jsonb_build_array(jsonb_build_object('kind', 'code_rule', 'detail', 'code outside the family rule')) END;
  END IF;

  INSERT INTO public.birth_break_glass (entity_code, collection_name, actor, reason, approval_id, workflow_id, permit_id, blockers)
  VALUES (p_entity_code, p_collection_name, p_actor, p_reason, p_approval_id, v_permit.workflow_id, p_permit_id,
          coalesce(v_blockers, '[]'::jsonb))
  RETURNING * INTO v;
  UPDATE public.birth_admission_permit p SET break_glass = true, break_glass_id = v.break_glass_id, updated_at = clock_timestamp()
   WHERE p.permit_id = p_permit_id;
  INSERT INTO public.birth_admission_permit_transition (permit_id, from_state, to_state, actor, reason)
  VALUES (p_permit_id, v_permit.state, v_permit.state, p_actor,
          format('break-glass %s opened by %s, approval %s: %s', v.break_glass_id, session_user, left(p_approval_id, 200), left(p_reason, 1500)));
  RETURN v;
END;
$$;
REVOKE ALL ON FUNCTION public.fn_break_glass_open(text, text, text, text, text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.fn_break_glass_open(text, text, text, text, text, bigint, text) TO birthgate_operator;

-- The gate's precheck (step 13 body) gains the exemption: a permit an operator broke the glass for
-- (break_glass_id set, only fn_break_glass_open sets it) admits a code outside the family rule.
CREATE OR REPLACE FUNCTION public.fn_admission_precheck(p_collection_name text, p_entity_code text, p_break_glass_id bigint)
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
  IF NOT public.fn_family_code_rule(p_collection_name, p_entity_code) AND p_break_glass_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('%s insert of %s refused: the code does not match the family code rule %s', p_collection_name,
                       left(p_entity_code, 80),
                       coalesce((SELECT mc.code_pattern::text FROM public.meta_catalog mc WHERE mc.collection_name = p_collection_name),
                                '^[A-Z]+-[0-9]+$')),
      HINT = 'meta_catalog.code_pattern holds the rule; an operator break-glass admits an exception';
  END IF;
END;
$$;

ALTER TABLE public.birth_break_glass OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_break_glass_open(text, text, text, text, text, bigint, text) OWNER TO birthgate_owner;

SELECT public.fn_drift_capture_step('step-15');

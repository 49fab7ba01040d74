-- KB-7D57 step 1: the permit ledger birth_admission_permit (+ uq_permit_idem, uq_permit_active).
-- Additive and self-contained (KB-3A66 §6: "additive, reversible, self-contained"): no existing row
-- is touched, so the rollback is a plain DROP. The transition log and the one transition function
-- are modelled on the live Điều 32 gate-token ledger (fn_iu_gate_open → iu_gate_transition, KB-35E7).
-- No lock_timeout/statement_timeout here: the runner sets them around every statement.

-- SECURITY.md: the packet's objects belong to birthgate_owner, a NOLOGIN, non-superuser role, never to
-- the superuser that applies them — so a SECURITY DEFINER body runs with the owner's few rights, and
-- nothing the estate owner (directus) controls ever runs with a superuser's. birthgate_operator is the
-- group role of the humans who break glass and decide on the packet; the worker is not a member.
-- Roles are cluster-global (other databases may use them): created when missing, brought back down
-- when they carry more power, never dropped by a rollback.
DO $$
BEGIN
  -- Both roles already there, with no more power than they should have: nothing to do, and no lock. The
  -- lock on the shared pg_authid serialises role DDL across every database of the cluster, and a
  -- transaction that takes it holds it to its end (a rehearsal's: until its ROLLBACK), so it is taken
  -- only when a role is created or brought down, and the check is repeated under it.
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_owner'
               AND NOT (rolsuper OR rolcanlogin OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls))
     AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_operator'
               AND NOT (rolsuper OR rolcanlogin OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)) THEN
    RETURN;
  END IF;
  LOCK TABLE pg_catalog.pg_authid IN SHARE ROW EXCLUSIVE MODE;  -- serialises role DDL across databases
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_owner') THEN
    CREATE ROLE birthgate_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
  ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_owner'
                  AND (rolsuper OR rolcanlogin OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)) THEN
    ALTER ROLE birthgate_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_operator') THEN
    CREATE ROLE birthgate_operator NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
  ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_operator'
                  AND (rolsuper OR rolcanlogin OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)) THEN
    ALTER ROLE birthgate_operator NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
  END IF;
END
$$;

-- KB-3A66 §6: 7-state model with a CHECK; no secrets stored (ids and names only).
CREATE TABLE public.birth_admission_permit (
  permit_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  idempotency_key  text NOT NULL,
  entity_code      text NOT NULL,
  collection_name  text NOT NULL,
  state            text NOT NULL DEFAULT 'REQUESTED',
  expires_at       timestamptz NOT NULL,
  workflow_id      text,
  run_id           text,
  row_id           bigint,
  birth_id         bigint,
  break_glass      boolean NOT NULL DEFAULT false,
  break_glass_id   bigint,
  requested_by     text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  consumed_at      timestamptz,
  consumed_txid    xid8,            -- the transaction whose insert consumed it (SECURITY.md: no move inside it)
  rollback_txid    xid8,            -- the transaction of the admission's own rollback (fn_admission_rollback)
  finalized_at     timestamptz,
  CONSTRAINT birth_admission_permit_state_check CHECK (state IN
    ('REQUESTED','RESERVED','CONSUMED','FINALIZED','FAILED','EXPIRED','CANCELLED')),
  -- The same limits the functions validate, so a direct writer cannot smuggle in what they refuse.
  CONSTRAINT birth_admission_permit_code_check CHECK (length(entity_code) BETWEEN 1 AND 200),
  CONSTRAINT birth_admission_permit_collection_check CHECK (length(collection_name) BETWEEN 1 AND 200),
  CONSTRAINT birth_admission_permit_key_check CHECK (length(idempotency_key) BETWEEN 1 AND 500)
);

COMMENT ON TABLE public.birth_admission_permit IS
  'KB-7D57 step 1 / DESIGN §3: no permit, no insert. A permit is created by fn_permit_open (REQUESTED, or RESERVED with both transitions logged); every later state is written by fn_permit_move (via fn_permit_transition and the gate and finalize triggers).';

-- KB-7D57 step 1: the two unique indexes named by the packet.
-- uq_permit_idem: the idempotency key (= Temporal workflow id) issues at most one permit.
CREATE UNIQUE INDEX uq_permit_idem ON public.birth_admission_permit (idempotency_key);
-- uq_permit_active: at most one live permit per (code, collection) — the composite identity at the
-- permit layer, which sidesteps the UNIQUE(entity_code)-alone defect (KB-4410 §B).
CREATE UNIQUE INDEX uq_permit_active ON public.birth_admission_permit (entity_code, collection_name)
  WHERE state IN ('REQUESTED','RESERVED','CONSUMED');
-- fn_dt_finalize finds the permit of an inserted row by its id.
CREATE INDEX idx_permit_row ON public.birth_admission_permit (collection_name, row_id) WHERE row_id IS NOT NULL;

-- Modelled on iu_gate_transition: one row per move, stamped with the transaction that made it.
CREATE TABLE public.birth_admission_permit_transition (
  transition_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  permit_id      bigint NOT NULL REFERENCES public.birth_admission_permit (permit_id) ON DELETE CASCADE,
  from_state     text,
  to_state       text NOT NULL,
  actor          text NOT NULL,
  reason         text,
  at             timestamptz NOT NULL DEFAULT clock_timestamp(),
  txid           xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX idx_permit_transition_permit ON public.birth_admission_permit_transition (permit_id, transition_id);

-- CONTRACT.md "Errors": every function validates its input before any write and raises BG400 with
-- a message that names the parameter (never echoing an oversized value back).
CREATE FUNCTION public.fn_admission_require_text(p_name text, p_value text, p_max integer, p_free_text boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_value IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('%s must not be NULL', p_name);
  END IF;
  IF btrim(p_value) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('%s must not be empty', p_name);
  END IF;
  IF length(p_value) > p_max THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('%s is too long: %s characters, at most %s allowed', p_name, length(p_value), p_max);
  END IF;
  -- Identifiers (codes, collections, actors, keys) are one line; free text (reasons) may have several.
  IF NOT p_free_text AND p_value ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('%s must not contain control characters', p_name);
  END IF;
  RETURN p_value;
END;
$$;

-- KB-2590 §4 check (1): a collection is admissible only when meta_catalog manages it and the table
-- exists. Unknown or unmanaged → BG400, so a permit can never name a table the gate cannot guard.
CREATE FUNCTION public.fn_admission_require_collection(p_collection_name text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
BEGIN
  PERFORM public.fn_admission_require_text('collection_name', p_collection_name, 200);
  IF NOT EXISTS (SELECT 1 FROM public.meta_catalog m
                  WHERE m.collection_name = p_collection_name AND m.managed) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('collection %s is unknown or not managed in meta_catalog', left(p_collection_name, 80));
  END IF;
  IF to_regclass(format('public.%I', p_collection_name)) IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('collection %s has no table', left(p_collection_name, 80));
  END IF;
  RETURN p_collection_name;
END;
$$;

-- A permit request's own parameters, checked in one place (fn_permit_open; fn_admission_open checks
-- them before its preflight): the key, the actor, the TTL, the workflow's ids. The code and the
-- collection are their callers' (fn_admission_require_text, fn_admission_require_collection).
CREATE FUNCTION public.fn_permit_require_params(p_idempotency_key text, p_ttl_seconds integer, p_actor text,
                                                p_workflow_id text, p_run_id text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM public.fn_admission_require_text('idempotency_key', p_idempotency_key, 500);
  PERFORM public.fn_admission_require_text('actor', p_actor, 200);
  IF p_ttl_seconds IS NULL OR p_ttl_seconds < 1 OR p_ttl_seconds > 604800 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('ttl_seconds must be between 1 and 604800 (7 days), got %s', coalesce(p_ttl_seconds::text, 'NULL'));
  END IF;
  IF p_workflow_id IS NOT NULL THEN PERFORM public.fn_admission_require_text('workflow_id', p_workflow_id, 500); END IF;
  IF p_run_id IS NOT NULL THEN PERFORM public.fn_admission_require_text('run_id', p_run_id, 200); END IF;
END;
$$;

-- DESIGN §3: the one writer of permit state. Refuses illegal moves (BG422), logs every move.
-- Internal: EXECUTE stays with the owner, so only the gate and finalize triggers (SECURITY DEFINER)
-- and fn_permit_transition below reach it. The links a move earns are written by the same UPDATE
-- (one row version per move): p_row_id only with → CONSUMED (the gate), p_birth_id only with
-- → FINALIZED (the finalize); NULL leaves the link as it is.
CREATE FUNCTION public.fn_permit_move(p_permit_id bigint, p_to_state text, p_actor text, p_reason text,
                               p_row_id bigint DEFAULT NULL, p_birth_id bigint DEFAULT NULL)
RETURNS public.birth_admission_permit
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v public.birth_admission_permit;
  v_legal boolean;
  v_from text;
BEGIN
  IF p_permit_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'permit_id must not be NULL';
  END IF;
  PERFORM public.fn_admission_require_text('to_state', p_to_state, 20);
  PERFORM public.fn_admission_require_text('actor', p_actor, 200);
  IF p_reason IS NOT NULL AND length(p_reason) > 2000 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('reason is too long: %s characters, at most 2000 allowed', length(p_reason));
  END IF;
  IF p_to_state NOT IN ('REQUESTED','RESERVED','CONSUMED','FINALIZED','FAILED','EXPIRED','CANCELLED') THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('to_state %s is not a permit state', left(p_to_state, 20));
  END IF;
  IF p_row_id IS NOT NULL AND p_to_state <> 'CONSUMED' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'row_id is set only by the move to CONSUMED';
  END IF;
  IF p_birth_id IS NOT NULL AND p_to_state <> 'FINALIZED' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'birth_id is set only by the move to FINALIZED';
  END IF;

  SELECT * INTO v FROM public.birth_admission_permit WHERE permit_id = p_permit_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('permit %s does not exist', p_permit_id);
  END IF;

  -- Idempotent retries: a move to the state the permit is already in changes nothing.
  IF v.state = p_to_state THEN
    RETURN v;
  END IF;

  v_legal := CASE v.state
    WHEN 'REQUESTED' THEN p_to_state IN ('RESERVED','FAILED','CANCELLED')
    WHEN 'RESERVED'  THEN p_to_state IN ('CONSUMED','EXPIRED','FAILED','CANCELLED')
    WHEN 'CONSUMED'  THEN p_to_state IN ('FINALIZED','FAILED')
    ELSE false  -- FINALIZED, FAILED, EXPIRED, CANCELLED are terminal
  END;
  IF NOT v_legal THEN
    RAISE EXCEPTION USING ERRCODE = 'BG422',
      MESSAGE = format('illegal permit transition %s → %s for permit %s', v.state, p_to_state, p_permit_id),
      HINT = 'legal: REQUESTED→RESERVED|FAILED|CANCELLED, RESERVED→CONSUMED|EXPIRED|FAILED|CANCELLED, CONSUMED→FINALIZED|FAILED';
  END IF;
  v_from := v.state;
  UPDATE public.birth_admission_permit
     SET state = p_to_state,
         updated_at = clock_timestamp(),
         consumed_at = CASE WHEN p_to_state = 'CONSUMED' THEN clock_timestamp() ELSE consumed_at END,
         consumed_txid = CASE WHEN p_to_state = 'CONSUMED' THEN pg_current_xact_id() ELSE consumed_txid END,
         finalized_at = CASE WHEN p_to_state = 'FINALIZED' THEN clock_timestamp() ELSE finalized_at END,
         row_id = coalesce(p_row_id, row_id),
         birth_id = coalesce(p_birth_id, birth_id)
   WHERE permit_id = p_permit_id
  RETURNING * INTO v;

  INSERT INTO public.birth_admission_permit_transition (permit_id, from_state, to_state, actor, reason)
  VALUES (p_permit_id, v_from, p_to_state, p_actor, p_reason);
  RETURN v;
END;
$$;

-- CONTRACT.md: the transition function callers use (activities, operators). CONSUMED and FINALIZED
-- are earned only by the insert itself (gate and finalize triggers), so no caller can mark a permit
-- consumed or finalized without the row and the birth behind it.
CREATE FUNCTION public.fn_permit_transition(p_permit_id bigint, p_to_state text, p_actor text, p_reason text)
RETURNS public.birth_admission_permit
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v public.birth_admission_permit;
BEGIN
  IF p_to_state IN ('CONSUMED','FINALIZED') THEN
    SELECT * INTO v FROM public.birth_admission_permit WHERE permit_id = p_permit_id;
    -- A retry that finds the permit already there is still a no-op, as for every other state.
    IF FOUND AND v.state = p_to_state THEN
      RETURN v;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'BG422',
      MESSAGE = format('permit %s can reach %s only through the dot_tools insert (gate and finalize triggers)',
                       coalesce(p_permit_id::text, 'NULL'), p_to_state);
  END IF;
  -- SECURITY.md hole 2: a permit consumed by an insert of this very transaction belongs to that
  -- insert until its commit; moving it away (→ FAILED) would let the row commit without its permit.
  SELECT * INTO v FROM public.birth_admission_permit WHERE permit_id = p_permit_id;
  IF FOUND AND v.state = 'CONSUMED' AND v.consumed_txid = pg_current_xact_id() THEN
    RAISE EXCEPTION USING ERRCODE = 'BG422',
      MESSAGE = format('permit %s was consumed by an insert of this transaction; it cannot be moved before that insert commits',
                       p_permit_id);
  END IF;
  RETURN public.fn_permit_move(p_permit_id, p_to_state, p_actor, p_reason);
END;
$$;

-- CONTRACT.md: the compensation's withdraw as one atomic move (issue 8 §4). Locks the permit, then
-- REQUESTED/RESERVED → p_to_state (CANCELLED or FAILED) through fn_permit_move; in any other state the
-- row comes back unchanged (the caller reads what happened from its state). One call instead of a read
-- followed by fn_permit_transition: the admission insert locks the permit first
-- (fn_admission_insert_permit), so an insert still running either commits before this — the permit
-- comes back FINALIZED — or rolls back and the permit is withdrawn; no move in between is refused.
CREATE FUNCTION public.fn_permit_withdraw(p_permit_id bigint, p_to_state text, p_actor text, p_reason text)
RETURNS public.birth_admission_permit
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v public.birth_admission_permit;
BEGIN
  IF p_permit_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'permit_id must not be NULL';
  END IF;
  PERFORM public.fn_admission_require_text('to_state', p_to_state, 20);
  IF p_to_state NOT IN ('CANCELLED', 'FAILED') THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('to_state %s: a permit is withdrawn to CANCELLED or FAILED', left(p_to_state, 20));
  END IF;
  PERFORM public.fn_admission_require_text('actor', p_actor, 200);
  PERFORM public.fn_admission_require_text('reason', p_reason, 2000, true);

  SELECT * INTO v FROM public.birth_admission_permit p WHERE p.permit_id = p_permit_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('permit %s does not exist', p_permit_id);
  END IF;
  IF v.state NOT IN ('REQUESTED', 'RESERVED') THEN
    RETURN v;  -- used (CONSUMED committed is FINALIZED) or already closed: nothing to withdraw
  END IF;
  RETURN public.fn_permit_move(p_permit_id, p_to_state, p_actor, p_reason);
END;
$$;

-- The one place a permit is created (fn_permit_request, fn_permit_issue), not callable by anyone but
-- its owner. A key never used before, for a (code, collection) no live permit holds, makes a new permit:
-- in REQUESTED (transition logged from NULL), or, with p_reserve, born RESERVED with both transitions
-- logged (NULL → REQUESTED, REQUESTED → RESERVED) — the same record fn_permit_request followed by the
-- move would leave, in one row version (issue 8 §6: the common admission reserves at once). A key used
-- before returns its permit as it is (same code and collection) or raises BG409; so does another live
-- permit for the same (code, collection). Every state after the first is fn_permit_move's.
CREATE FUNCTION public.fn_permit_open(p_idempotency_key text, p_entity_code text, p_collection_name text,
                               p_ttl_seconds integer, p_actor text, p_workflow_id text, p_run_id text,
                               p_reserve boolean)
RETURNS public.birth_admission_permit
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v public.birth_admission_permit;
  v_holder bigint;
BEGIN
  PERFORM public.fn_admission_require_text('entity_code', p_entity_code, 200);
  PERFORM public.fn_admission_require_collection(p_collection_name);
  PERFORM public.fn_permit_require_params(p_idempotency_key, p_ttl_seconds, p_actor, p_workflow_id, p_run_id);
  IF p_reserve IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'reserve must be true or false';
  END IF;

  BEGIN
    INSERT INTO public.birth_admission_permit (idempotency_key, entity_code, collection_name, state, expires_at,
                                        workflow_id, run_id, requested_by)
    VALUES (p_idempotency_key, p_entity_code, p_collection_name,
            CASE WHEN p_reserve THEN 'RESERVED' ELSE 'REQUESTED' END,
            clock_timestamp() + make_interval(secs => p_ttl_seconds), p_workflow_id, p_run_id, p_actor)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING * INTO v;
  EXCEPTION WHEN unique_violation THEN
    -- Only uq_permit_active can fire here (uq_permit_idem is the arbiter above).
    SELECT permit_id INTO v_holder FROM public.birth_admission_permit
     WHERE entity_code = p_entity_code AND collection_name = p_collection_name
       AND state IN ('REQUESTED','RESERVED','CONSUMED');
    RAISE EXCEPTION USING ERRCODE = 'BG409',
      MESSAGE = format('another active permit (%s) holds (%s, %s)', coalesce(v_holder::text, '?'),
                       left(p_entity_code, 80), p_collection_name);
  END;

  IF v.permit_id IS NULL THEN
    -- The key was used before: same request → the same permit, whatever its state; else a conflict.
    SELECT * INTO v FROM public.birth_admission_permit WHERE idempotency_key = p_idempotency_key;
    IF v.entity_code IS DISTINCT FROM p_entity_code OR v.collection_name IS DISTINCT FROM p_collection_name THEN
      RAISE EXCEPTION USING ERRCODE = 'BG409',
        MESSAGE = format('idempotency key already issued permit %s for (%s, %s)', v.permit_id,
                         left(v.entity_code, 80), v.collection_name);
    END IF;
    RETURN v;
  END IF;

  IF p_reserve THEN
    INSERT INTO public.birth_admission_permit_transition (permit_id, from_state, to_state, actor, reason)
    VALUES (v.permit_id, NULL, 'REQUESTED', p_actor, 'requested'),
           (v.permit_id, 'REQUESTED', 'RESERVED', p_actor, format('reserved for %s seconds', p_ttl_seconds));
  ELSE
    INSERT INTO public.birth_admission_permit_transition (permit_id, from_state, to_state, actor, reason)
    VALUES (v.permit_id, NULL, 'REQUESTED', p_actor, 'requested');
  END IF;
  RETURN v;
END;
$$;

-- CONTRACT.md: a permit in REQUESTED, the first state of the 7-state model (transition logged from
-- NULL). A stuck birth holds its place in the ledger with it while it waits for an operator: the
-- permit exists (its id is visible, it holds uq_permit_active for the code) but admits nothing, since
-- the gate wants RESERVED. Idempotent on the key: the same key with the same (code, collection)
-- returns the existing permit in whatever state it is; other params raise BG409, as does another live
-- permit for the same (code, collection). expires_at is set to now() + ttl as a placeholder: the
-- expiry sweep never expires a REQUESTED permit, and fn_permit_issue resets it at reservation.
CREATE FUNCTION public.fn_permit_request(p_idempotency_key text, p_entity_code text, p_collection_name text,
                                  p_ttl_seconds integer, p_actor text,
                                  p_workflow_id text DEFAULT NULL, p_run_id text DEFAULT NULL)
RETURNS public.birth_admission_permit
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT * FROM public.fn_permit_open(p_idempotency_key, p_entity_code, p_collection_name, p_ttl_seconds,
                                      p_actor, p_workflow_id, p_run_id, false)
$$;

-- CONTRACT.md: a RESERVED permit, its TTL counted from the reservation. A new key makes it RESERVED at
-- once (both transitions logged, fn_permit_open). Idempotent on the key: a permit the key holds in
-- REQUESTED (a stuck birth whose stop-conditions cleared, or an operator broke the glass) is reserved
-- now; in any other state it is returned unchanged. BG409 on a reused key with other params or on
-- another live permit for the same (code, collection); the same validation and SQLSTATEs as
-- fn_permit_request.
CREATE FUNCTION public.fn_permit_issue(p_idempotency_key text, p_entity_code text, p_collection_name text,
                                p_ttl_seconds integer, p_actor text,
                                p_workflow_id text DEFAULT NULL, p_run_id text DEFAULT NULL)
RETURNS public.birth_admission_permit
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v public.birth_admission_permit;
BEGIN
  v := public.fn_permit_open(p_idempotency_key, p_entity_code, p_collection_name, p_ttl_seconds,
                             p_actor, p_workflow_id, p_run_id, true);
  IF v.state <> 'REQUESTED' THEN
    RETURN v;
  END IF;
  -- Re-read under the row lock: a concurrent issue (or a cancel) of the same permit may have moved it.
  SELECT * INTO v FROM public.birth_admission_permit WHERE permit_id = v.permit_id FOR UPDATE;
  IF v.state <> 'REQUESTED' THEN
    RETURN v;
  END IF;
  UPDATE public.birth_admission_permit
     SET expires_at = clock_timestamp() + make_interval(secs => p_ttl_seconds)
   WHERE permit_id = v.permit_id;
  RETURN public.fn_permit_move(v.permit_id, 'RESERVED', p_actor, format('reserved for %s seconds', p_ttl_seconds));
END;
$$;

-- DESIGN §5 permit-expiry sweep (Temporal Schedule, no pg_cron): RESERVED past its TTL → EXPIRED.
-- RESERVED only: a REQUESTED permit belongs to a parked stuck birth and waits for its operator
-- (retry, break-glass → RESERVED; cancel → CANCELLED), however long that takes; its expires_at is a
-- placeholder until fn_permit_issue reserves it.
CREATE FUNCTION public.fn_permit_expire_due(p_actor text DEFAULT 'permit-expiry-sweep')
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
  v_n integer := 0;
BEGIN
  PERFORM public.fn_admission_require_text('actor', p_actor, 200);
  -- SKIP LOCKED: a permit being consumed right now belongs to that insert, not to the sweep.
  FOR v_id IN
    SELECT permit_id FROM public.birth_admission_permit
     WHERE state = 'RESERVED' AND expires_at < clock_timestamp()
     ORDER BY permit_id
     FOR UPDATE SKIP LOCKED
  LOOP
    PERFORM public.fn_permit_move(v_id, 'EXPIRED', p_actor, 'TTL elapsed');
    v_n := v_n + 1;
  END LOOP;
  RETURN v_n;
END;
$$;

-- CONTRACT.md: one read for the workflow's finalize check and status queries.
CREATE FUNCTION public.fn_admission_state(p_permit_id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v public.birth_admission_permit;
  v_birth jsonb;
BEGIN
  IF p_permit_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'permit_id must not be NULL';
  END IF;
  SELECT * INTO v FROM public.birth_admission_permit WHERE permit_id = p_permit_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('permit %s does not exist', p_permit_id);
  END IF;
  SELECT jsonb_build_object('birth_id', b.id, 'status', b.status, 'entity_code', b.entity_code,
                            'collection_name', b.collection_name)
    INTO v_birth
    FROM public.birth_registry b WHERE b.id = v.birth_id;
  RETURN jsonb_build_object(
    'permit', to_jsonb(v),
    'transitions', coalesce((SELECT jsonb_agg(jsonb_build_object('from', t.from_state, 'to', t.to_state,
                                     'actor', t.actor, 'reason', t.reason, 'at', t.at) ORDER BY t.transition_id)
                               FROM public.birth_admission_permit_transition t WHERE t.permit_id = p_permit_id), '[]'::jsonb),
    'row_id', v.row_id,
    'birth_id', v.birth_id,
    'birth_status', v_birth ->> 'status',
    'birth', v_birth);
END;
$$;

-- SECURITY DEFINER functions are not for PUBLIC; sql/roles/birthgate_worker.sql grants them.
REVOKE ALL ON FUNCTION public.fn_permit_move(bigint, text, text, text, bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_permit_transition(bigint, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_permit_withdraw(bigint, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_permit_open(text, text, text, integer, text, text, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_permit_request(text, text, text, integer, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_permit_issue(text, text, text, integer, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_permit_expire_due(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_admission_state(bigint) FROM PUBLIC;
REVOKE ALL ON TABLE public.birth_admission_permit, public.birth_admission_permit_transition FROM PUBLIC;

-- SECURITY.md: every object of this step belongs to birthgate_owner, which needs to read the catalogue
-- of the estate (and, for later steps, the governed rows and their births). Granted for the whole
-- packet here, taken back by this step's rollback. UPDATE on birth_registry: finalize marks and
-- re-births, retire sets the status (table-level, because LOCK TABLE … ROW EXCLUSIVE, which
-- fn_admission_estate_write_check takes before it trusts the table, wants a table-level right).
ALTER TABLE public.birth_admission_permit OWNER TO birthgate_owner;
ALTER TABLE public.birth_admission_permit_transition OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_require_text(text, text, integer, boolean) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_require_collection(text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_permit_require_params(text, integer, text, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_permit_move(bigint, text, text, text, bigint, bigint) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_permit_transition(bigint, text, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_permit_withdraw(bigint, text, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_permit_open(text, text, text, integer, text, text, text, boolean) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_permit_request(text, text, text, integer, text, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_permit_issue(text, text, text, integer, text, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_permit_expire_due(text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_admission_state(bigint) OWNER TO birthgate_owner;
GRANT SELECT ON public.meta_catalog, public.birth_registry, public.dot_tools TO birthgate_owner;
GRANT UPDATE ON public.birth_registry TO birthgate_owner;

-- KB-7D57 "External scheduler — pg_cron absent: permit-expiry sweep + drift comparator … need an external
-- scheduler" / KB-4410 §E: the Temporal Schedules are that scheduler (client/schedules.ts). This step
-- gives their two ticks what they write and the narrow definer functions the worker calls:
--   birth_drift_finding         every drift-watch finding with first-seen, last-seen, ticks and when it
--                               was resolved (and by what: no longer seen, or an owner's rebaseline);
--   birth_drift_watch           the watch's one row: when it last ticked, by whom, how many open;
--   fn_drift_watch_tick         one drift-watch tick (worker): every dim computed — the guard the gate
--                               reads refreshed, so gate_drift keeps failing closed — and recorded;
--   fn_drift_accept             the logged rebaseline (operator): fn_drift_rebaseline, with what it
--                               accepted returned and the findings it cleared resolved in its name;
--   fn_permit_reconcile_closed  the permit sweep's cancel of a live permit whose owning workflow is
--                               closed in Temporal, checked against the permit's own workflow id and
--                               logged with the run, its close status and time.
-- Every object belongs to birthgate_owner, so the drift snapshot covers them (functions and relations
-- owned by it) and fn_drift_check's DDL patterns match them (fn_drift_, fn_permit_, birth_drift_).

CREATE TABLE public.birth_drift_finding (
  finding_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- What makes two ticks' findings the same finding: 'dim:<dim>' for a blocking dim, or
  -- 'gate_drift:<drift>:<kind>:<name>' for one row of fn_drift_check.
  finding_key    text NOT NULL,
  dim            text NOT NULL,
  kind           text,
  name           text,
  drift          text,
  expected       text,
  actual         text,
  detail         text,
  block_count    bigint,
  hard           boolean NOT NULL,
  first_seen     timestamptz NOT NULL,
  last_seen      timestamptz NOT NULL,
  ticks          integer NOT NULL DEFAULT 1,
  first_seen_by  text NOT NULL,
  last_seen_by   text NOT NULL,
  resolved_at    timestamptz,
  resolved_by    text,
  CONSTRAINT birth_drift_finding_resolved_check CHECK ((resolved_at IS NULL) = (resolved_by IS NULL)),
  CONSTRAINT birth_drift_finding_seen_check CHECK (last_seen >= first_seen AND ticks >= 1)
);
-- One open finding per key: a finding that clears and comes back is a new finding (its own first_seen).
CREATE UNIQUE INDEX uq_drift_finding_open ON public.birth_drift_finding (finding_key) WHERE resolved_at IS NULL;
CREATE INDEX idx_drift_finding_last_seen ON public.birth_drift_finding (last_seen);

CREATE TABLE public.birth_drift_watch (
  singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_tick_at       timestamptz,
  last_tick_by       text,
  last_session_role  text,
  ticks              bigint NOT NULL DEFAULT 0,
  open_findings      integer NOT NULL DEFAULT 0
);
INSERT INTO public.birth_drift_watch (singleton) VALUES (true);

-- Record what the admission's dims say now (computing them refreshes birth_admission_guard, which the
-- gate reads on every insert): a finding seen again gets last_seen and one more tick, a new one is
-- opened, an open one no longer seen is resolved with p_resolution. gate_drift is recorded row by row
-- (fn_drift_check: what changed, not only how many); the other dims, and gate_drift when its rows
-- cannot be read, one row per dim. Internal: the tick and the rebaseline below call it.
CREATE FUNCTION public.fn_drift_watch_record(p_actor text, p_resolution text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v_now timestamptz;
  v_dims jsonb;
  v_catalog jsonb;
  v_seen jsonb;
  v_new integer;
  v_resolved integer;
  v_open integer;
BEGIN
  -- One recorder at a time (the schedule's tick, a manual trigger, a rebaseline): the row lock orders
  -- them, so a finding is opened once.
  PERFORM 1 FROM public.birth_drift_watch w WHERE w.singleton FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO public.birth_drift_watch (singleton) VALUES (true) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM public.birth_drift_watch w WHERE w.singleton FOR UPDATE;
  END IF;
  v_now := clock_timestamp();

  SELECT coalesce(jsonb_agg(jsonb_build_object('dim', d.dim, 'count', d.block_count, 'detail', d.detail,
                                               'hard', d.hard, 'computed', d.computed) ORDER BY d.dim), '[]'::jsonb)
    INTO v_dims FROM public.fn_admission_dims() d WHERE NOT d.computed OR d.block_count > 0;
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_dims) x WHERE x ->> 'dim' = 'gate_drift' AND (x ->> 'computed')::boolean) THEN
    BEGIN
      SELECT jsonb_agg(to_jsonb(c)) INTO v_catalog FROM public.fn_drift_check() c;
    EXCEPTION WHEN OTHERS THEN
      v_catalog := NULL;  -- recorded as the dim's own row below
    END;
  END IF;

  SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.key), '[]'::jsonb) INTO v_seen FROM (
    SELECT left(format('dim:%s', x ->> 'dim'), 1500) AS key, x ->> 'dim' AS dim, NULL::text AS kind, NULL::text AS name,
           NULL::text AS drift, NULL::text AS expected, NULL::text AS actual, left(x ->> 'detail', 2000) AS detail,
           (x ->> 'count')::bigint AS block_count, ((x ->> 'hard')::boolean OR NOT (x ->> 'computed')::boolean) AS hard
      FROM jsonb_array_elements(v_dims) x
     WHERE x ->> 'dim' <> 'gate_drift' OR v_catalog IS NULL
    UNION ALL
    (SELECT DISTINCT ON (c.key) c.key, 'gate_drift', c.kind, c.name, c.drift, left(c.expected, 2000), left(c.actual, 2000),
            NULL::text, c.n, true
       FROM (SELECT left(format('gate_drift:%s:%s:%s', r.drift, r.kind, r.name), 1500) AS key, r.kind, r.name, r.drift,
                    r.expected, r.actual, count(*) OVER (PARTITION BY r.drift, r.kind, r.name) AS n
               FROM jsonb_to_recordset(coalesce(v_catalog, '[]'::jsonb))
                    AS r(kind text, name text, expected text, actual text, drift text)) c
      ORDER BY c.key, c.actual DESC NULLS LAST)
  ) s;

  UPDATE public.birth_drift_finding f
     SET last_seen = v_now, last_seen_by = p_actor, ticks = f.ticks + 1, detail = s.detail, block_count = s.block_count,
         expected = s.expected, actual = s.actual, hard = s.hard
    FROM jsonb_to_recordset(v_seen) AS s(key text, dim text, kind text, name text, drift text, expected text, actual text,
                                        detail text, block_count bigint, hard boolean)
   WHERE f.finding_key = s.key AND f.resolved_at IS NULL;
  INSERT INTO public.birth_drift_finding (finding_key, dim, kind, name, drift, expected, actual, detail, block_count, hard,
                                         first_seen, last_seen, first_seen_by, last_seen_by)
  SELECT s.key, s.dim, s.kind, s.name, s.drift, s.expected, s.actual, s.detail, s.block_count, s.hard, v_now, v_now, p_actor, p_actor
    FROM jsonb_to_recordset(v_seen) AS s(key text, dim text, kind text, name text, drift text, expected text, actual text,
                                        detail text, block_count bigint, hard boolean)
   WHERE NOT EXISTS (SELECT 1 FROM public.birth_drift_finding f WHERE f.finding_key = s.key AND f.resolved_at IS NULL);
  GET DIAGNOSTICS v_new = ROW_COUNT;
  UPDATE public.birth_drift_finding f
     SET resolved_at = v_now, resolved_by = p_resolution
   WHERE f.resolved_at IS NULL
     AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset(v_seen) AS s(key text) WHERE s.key = f.finding_key);
  GET DIAGNOSTICS v_resolved = ROW_COUNT;

  SELECT count(*) INTO v_open FROM public.birth_drift_finding f WHERE f.resolved_at IS NULL;
  UPDATE public.birth_drift_watch w
     SET last_tick_at = v_now, last_tick_by = p_actor, last_session_role = session_user, ticks = w.ticks + 1, open_findings = v_open
   WHERE w.singleton;
  -- The answer stays small (a workflow result): counts, and the oldest 50 open findings.
  RETURN jsonb_build_object(
    'at', v_now, 'open', v_open, 'new', v_new, 'resolved', v_resolved,
    'hard', (SELECT count(*) FROM public.birth_drift_finding f WHERE f.resolved_at IS NULL AND f.hard),
    'findings', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'finding_id', f.finding_id, 'dim', f.dim, 'kind', f.kind, 'name', f.name, 'drift', f.drift,
                   'detail', f.detail, 'count', f.block_count, 'hard', f.hard, 'first_seen', f.first_seen,
                   'last_seen', f.last_seen, 'ticks', f.ticks) ORDER BY f.finding_id), '[]'::jsonb)
                   FROM (SELECT * FROM public.birth_drift_finding x WHERE x.resolved_at IS NULL
                          ORDER BY x.finding_id LIMIT 50) f));
END;
$$;

-- One drift-watch tick (the drift-watch Schedule's activity; EXECUTE: birthgate_worker). Like the
-- preflight, lock_timeout = 0 inside: fn_admission_dims takes any error of a dim for "not computed"
-- (fail closed), so a dim that met the worker's 3 s lock_timeout would poison the guard for every
-- insert; a lock wait is bounded by the role's statement_timeout instead, which fails the tick, retryably.
CREATE FUNCTION public.fn_drift_watch_tick(p_actor text DEFAULT 'drift-watch')
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = 0
AS $$
BEGIN
  PERFORM public.fn_admission_require_text('actor', p_actor, 200);
  RETURN public.fn_drift_watch_record(p_actor, format('no longer seen by %s', p_actor));
END;
$$;

-- The only way to accept a change the drift watch reports, logged (EXECUTE: birthgate_operator;
-- `birthgate rebaseline`): fn_drift_rebaseline (a new baseline set, who/why/approval in
-- birth_drift_rebaseline, the dims recomputed), and in the same transaction what it accepted — the
-- catalog findings of the set it replaces, returned — and the findings it cleared resolved in the name
-- of the set, the owner, the approval and the login. Data-level findings stay until the data is repaired.
CREATE FUNCTION public.fn_drift_accept(p_owner text, p_reason text, p_approval_id text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v_accepted jsonb;
  r record;
  v_watch jsonb;
BEGIN
  PERFORM public.fn_admission_require_text('owner', p_owner, 200);
  PERFORM public.fn_admission_require_text('reason', p_reason, 2000, true);
  PERFORM public.fn_admission_require_text('approval_id', p_approval_id, 200);
  PERFORM 1 FROM public.birth_drift_watch w WHERE w.singleton FOR UPDATE;
  SELECT coalesce(jsonb_agg(jsonb_build_object('kind', c.kind, 'name', c.name, 'drift', c.drift, 'expected', c.expected,
                                               'actual', c.actual) ORDER BY c.kind, c.name, c.drift), '[]'::jsonb)
    INTO v_accepted FROM public.fn_drift_check() c;
  SELECT * INTO r FROM public.fn_drift_rebaseline(p_owner, p_reason, p_approval_id);
  v_watch := public.fn_drift_watch_record(left(format('rebaseline by %s', p_owner), 200),
               format('cleared at rebaseline %s (owner %s, approval %s, login %s)', r.baseline_set, p_owner, p_approval_id, session_user));
  RETURN jsonb_build_object('baseline_set', r.baseline_set, 'rows_captured', r.rows_captured,
                            'remaining_findings', r.remaining_findings, 'accepted', v_accepted, 'watch', v_watch);
END;
$$;

-- DESIGN §5 permit-expiry sweep, its second half: a live permit (REQUESTED, RESERVED, CONSUMED) whose
-- owning workflow is closed in Temporal — terminated, timed out, or ended without withdrawing it — is
-- withdrawn: CANCELLED, or FAILED from CONSUMED (the only move CONSUMED allows). The worker describes
-- the workflow and reports the run it found closed; the database cannot check Temporal's word, so it
-- checks what it can and logs the rest (EXECUTE: birthgate_worker):
--   - p_workflow_id is the permit's own workflow_id (the sweep names the owner it described, never any
--     permit) — BG409 otherwise;
--   - the status is a closed one: RUNNING and CONTINUED_AS_NEW (its chain goes on) are refused, BG400;
--   - the permit has not moved since that run closed: a move after the close was made by someone still
--     using it (a reset run of the same workflow) — BG409;
--   - the move and its reason (workflow, run, status, close time, the permit's own run) are logged in
--     the transition log like every move, under p_actor.
-- What a dishonest worker gains: nothing it lacks — fn_permit_transition / fn_permit_withdraw (its
-- compensations) already cancel a REQUESTED or RESERVED permit; this adds only that it is named and logged.
-- The row lock waits for an admission insert still holding the permit (an activity of a terminated
-- run may still run): it either committed (FINALIZED, returned unchanged) or rolled back.
CREATE FUNCTION public.fn_permit_reconcile_closed(p_permit_id bigint, p_workflow_id text, p_run_id text, p_run_status text,
                                                  p_closed_at timestamptz, p_actor text)
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
  PERFORM public.fn_admission_require_text('workflow_id', p_workflow_id, 500);
  PERFORM public.fn_admission_require_text('run_id', p_run_id, 200);
  PERFORM public.fn_admission_require_text('run_status', p_run_status, 40);
  PERFORM public.fn_admission_require_text('actor', p_actor, 200);
  IF p_run_status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED', 'TERMINATED', 'TIMED_OUT') THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('run_status %s is not closed: only COMPLETED, FAILED, CANCELLED, TERMINATED or TIMED_OUT abandon a permit',
                       left(p_run_status, 40));
  END IF;
  IF p_closed_at IS NULL OR p_closed_at > clock_timestamp() + interval '1 minute' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'closed_at must be the time the run closed';
  END IF;

  SELECT * INTO v FROM public.birth_admission_permit p WHERE p.permit_id = p_permit_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('permit %s does not exist', p_permit_id);
  END IF;
  IF v.workflow_id IS DISTINCT FROM p_workflow_id THEN
    RAISE EXCEPTION USING ERRCODE = 'BG409',
      MESSAGE = format('permit %s belongs to workflow %s, not %s: nothing reconciled', p_permit_id,
                       left(coalesce(v.workflow_id, 'none'), 200), left(p_workflow_id, 200));
  END IF;
  IF v.state NOT IN ('REQUESTED', 'RESERVED', 'CONSUMED') THEN
    RETURN v;  -- already closed (by its workflow, the TTL sweep or an earlier tick): nothing to do
  END IF;
  IF v.updated_at > p_closed_at THEN
    RAISE EXCEPTION USING ERRCODE = 'BG409',
      MESSAGE = format('permit %s moved at %s, after run %s closed at %s: it is in use, not abandoned', p_permit_id,
                       v.updated_at, left(p_run_id, 200), p_closed_at);
  END IF;
  RETURN public.fn_permit_move(v.permit_id, CASE WHEN v.state = 'CONSUMED' THEN 'FAILED' ELSE 'CANCELLED' END, p_actor,
    format('owning workflow %s is closed: run %s %s at %s (the permit was requested by run %s)',
           left(p_workflow_id, 500), left(p_run_id, 200), p_run_status, p_closed_at, coalesce(v.run_id, 'unknown')));
END;
$$;

REVOKE ALL ON TABLE public.birth_drift_finding, public.birth_drift_watch FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_drift_watch_record(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_drift_watch_tick(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_drift_accept(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.fn_permit_reconcile_closed(bigint, text, text, text, timestamptz, text) FROM PUBLIC;
-- The humans who decide read what the watch found (`birthgate drift`) and accept a change; the worker's
-- EXECUTE on the tick and the reconcile is granted by sql/roles/birthgate_worker.sql.
GRANT EXECUTE ON FUNCTION public.fn_drift_accept(text, text, text) TO birthgate_operator;
GRANT SELECT ON public.birth_drift_finding, public.birth_drift_watch TO birthgate_operator;

ALTER TABLE public.birth_drift_finding OWNER TO birthgate_owner;
ALTER TABLE public.birth_drift_watch OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_drift_watch_record(text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_drift_watch_tick(text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_drift_accept(text, text, text) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_permit_reconcile_closed(bigint, text, text, text, timestamptz, text) OWNER TO birthgate_owner;

SELECT public.fn_drift_capture_step('step-17');

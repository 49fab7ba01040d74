-- The least-privilege login role of the admission worker (issue 3 §4, DESIGN §3: "the worker
-- connects as a non-superuser role"). It issues and moves permits only through the SECURITY DEFINER
-- functions, inserts into dot_tools, reads the permit views. It has no UPDATE/DELETE on
-- birth_admission_permit and owns nothing, so it cannot ALTER TABLE dot_tools DISABLE TRIGGER. It
-- cannot write birth_registry at all: a birth happens only as the effect of an insert the permit gate
-- admitted, through the SECURITY DEFINER birth triggers (KB-7D57 steps 4 and 5).
--
-- Run after the apply packet, as a superuser, in the target database; re-runnable. Grants are
-- made for what exists, so it also fits a packet applied only part of the way. Before steps 4/5 the
-- birth triggers still run with the inserting role's rights and this role may not write births, so a
-- worker insert into dot_tools is refused (permission denied for birth_registry): it fails closed.
--
-- Password: the caller passes it as a parameter, never in this file:
--   BEGIN; SELECT set_config('birthgate.worker_password', $1, true); <this file>; COMMIT;
-- (is_local = true: the setting ends with the transaction). Without it the password is left as is.
DO $$
DECLARE
  v_password text := nullif(current_setting('birthgate.worker_password', true), '');
BEGIN
  -- Roles are cluster-global and test databases share one cluster: a lock on the shared catalog
  -- pg_authid serialises role DDL across every database, so two creators never race.
  LOCK TABLE pg_catalog.pg_authid IN SHARE ROW EXCLUSIVE MODE;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'birthgate_worker') THEN
    CREATE ROLE birthgate_worker LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
  ELSIF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'birthgate_worker'
                  AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls OR NOT rolcanlogin)) THEN
    -- A pre-existing role with more power than this file grants is brought back down.
    ALTER ROLE birthgate_worker LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
  END IF;
  IF v_password IS NOT NULL THEN
    IF length(v_password) < 8 OR length(v_password) > 200 THEN
      RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = 'birthgate.worker_password must be 8 to 200 characters';
    END IF;
    EXECUTE format('ALTER ROLE birthgate_worker PASSWORD %L', v_password);
  END IF;
END
$$;

-- Issue 8 §4: the database bounds every worker session by itself, whatever the client does, so an
-- admission step Temporal gave up on cannot go on holding (or, later, committing) what it touched.
-- Every admission activity has startToClose 10 s (workflows/activity-options.ts); all three bounds sit
-- below it, so the server ends a stuck statement or transaction before Temporal retries the attempt:
--   lock_timeout 3 s  — a wait for a lock (the permit row another session holds, dot_tools under an
--                        ALTER, an uncommitted insert of the same code) ends with 55P03, a retryable
--                        failure, well inside one attempt; the attempt's rollback releases the permit.
--   statement_timeout 8 s — no admission statement runs long (preflight is milliseconds at prod scale);
--                        one that does is cancelled (57014, retryable) before the attempt's 10 s are up.
--   idle_in_transaction_session_timeout 5 s — the worker never idles inside a transaction (BEGIN, one
--                        insert, COMMIT); a worker that stalls there (GC pause, partition, SIGSTOP) has
--                        its session terminated and its insert rolled back, so the permit lock is
--                        released and the stalled COMMIT can never land after the compensations ran.
-- Role-wide (ALTER ROLE … SET), not per database (ALTER ROLE … IN DATABASE … SET): the role is
-- cluster-global and these bounds follow from the activities' timeouts, not from the database, so every
-- database this file runs in wants the same values, and a re-run anywhere writes the same row. The
-- per-database form would put one row per estate database into the shared pg_db_role_setting, which
-- both a DROP DATABASE (its rows) and a DROP ROLE (all the role's rows) delete: run concurrently they
-- collide ("tuple concurrently deleted", seen in this suite). A DBA who needs other values in one
-- database still can: a per-database setting outranks this one. They are session defaults: the worker
-- cannot change the role's (no CREATEROLE), and its own code never SETs them in a session.
DO $$
DECLARE
  v_setting text[];
BEGIN
  -- Again (the file may run statement by statement): two databases' runs write the same shared row.
  LOCK TABLE pg_catalog.pg_authid IN SHARE ROW EXCLUSIVE MODE;
  FOREACH v_setting SLICE 1 IN ARRAY ARRAY[['lock_timeout', '3s'], ['statement_timeout', '8s'],
                                           ['idle_in_transaction_session_timeout', '5s']] LOOP
    EXECUTE format('ALTER ROLE birthgate_worker SET %s = %L', v_setting[1], v_setting[2]);
  END LOOP;
END
$$;

DO $$
DECLARE
  v_fn text;
  v_rel text;
  v_guarded boolean;
BEGIN
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO birthgate_worker', current_database());
  GRANT USAGE ON SCHEMA public TO birthgate_worker;

  -- The admission API (CONTRACT.md "Functions"): EXECUTE only. Not granted, on purpose (SECURITY.md):
  -- fn_break_glass_open, fn_birth_retire and fn_admission_halt are birthgate_operator's; a re-run takes
  -- them back from a worker an earlier version of this file gave them to.
  FOREACH v_fn IN ARRAY ARRAY['fn_break_glass_open(text,text,text,text,text,bigint,text)',
                              'fn_birth_retire(text,text,text,text)', 'fn_admission_halt(text,boolean,text,text)'] LOOP
    IF to_regprocedure('public.' || v_fn) IS NOT NULL THEN
      EXECUTE format('REVOKE ALL ON FUNCTION public.%s FROM birthgate_worker', v_fn);
    END IF;
  END LOOP;
  FOREACH v_fn IN ARRAY ARRAY[
    'fn_permit_request(text,text,text,integer,text,text,text)',
    'fn_permit_issue(text,text,text,integer,text,text,text)',
    'fn_permit_transition(bigint,text,text,text)',
    'fn_permit_withdraw(bigint,text,text,text)',
    'fn_permit_expire_due(text)',
    'fn_admission_state(bigint)',
    'fn_admission_insert_dot_tools(bigint,jsonb)',
    'fn_admission_insert_permit(bigint)',
    'fn_drift_check()',
    'fn_drift_tick()',
    'fn_admission_assert_safe(text)',
    'fn_admission_preflight(text,text)',
    'fn_admission_open(text,text,text,integer,text,text,text)',
    'fn_admission_rollback(bigint,text,text)',
    'fn_admission_rollback_authorize(bigint,text,text)',
    'fn_admission_rollback_complete(bigint,text,text)',
    'fn_governance_handoff_batch(text,integer,text)',  -- step 18: the governance handoff's one entry point
    -- The Schedules' ticks (step 17): the drift watch's record, the permit sweep's reconcile of closed runs.
    'fn_drift_watch_tick(text)',
    'fn_permit_reconcile_closed(bigint,text,text,text,timestamptz,text)'
  ] LOOP
    IF to_regprocedure('public.' || v_fn) IS NOT NULL THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION public.%s TO birthgate_worker', v_fn);
    END IF;
  END LOOP;

  -- The read-only views: permits (KB-7D57 step 12) and the BLOCK dims the preflight reads.
  FOREACH v_rel IN ARRAY ARRAY['v_permit_active', 'v_permit_stuck', 'v_permit_summary', 'v_gate_drift'] LOOP
    IF to_regclass('public.' || v_rel) IS NOT NULL THEN
      EXECUTE format('GRANT SELECT ON public.%I TO birthgate_worker', v_rel);
    END IF;
  END LOOP;

  -- The insert itself. The estate's own invoker triggers on dot_tools run with the inserting role's
  -- rights: fn_birth_gate → fn_pre_birth_check reads meta_catalog, dot_tools (name check) and
  -- birth_registry (code check), fn_registry_changelog appends the audit row. So: SELECT on those,
  -- INSERT on registry_changelog. The birth itself (fn_birth_registry_auto / _auto_id) is SECURITY
  -- DEFINER after KB-7D57 steps 4/5 and writes birth_registry with its owner's rights.
  -- INSERT only while the permit gate and the deferred finalize guard the table (KB-7D57 steps 9/10,
  -- both ENABLE ALWAYS): on a packet applied part of the way the worker cannot insert at all, rather
  -- than birth a row without a permit.
  -- DELETE too, for the admission's own rollback (fn_admission_rollback deletes with the caller's rights
  -- so that the estate's DELETE triggers never run as birthgate_owner); the row guard refuses any other
  -- delete of a governed row by this role.
  IF to_regclass('public.dot_tools') IS NOT NULL THEN
    GRANT SELECT ON public.dot_tools TO birthgate_worker;
    v_guarded := (SELECT count(*) FROM pg_trigger
                   WHERE tgrelid = 'public.dot_tools'::regclass AND tgenabled = 'A'
                     AND tgname IN ('trg_permit_gate_dot_tools', 'trg_dt_consume', 'trg_dt_finalize',
                                    'trg_permit_guard_dot_tools', 'trg_permit_guard_delete_dot_tools')) = 5;
    IF v_guarded AND to_regclass('public.birth_admission_family') IS NOT NULL THEN
      -- dynamic: the family table does not exist on a packet applied only part of the way
      EXECUTE $q$SELECT EXISTS (SELECT 1 FROM public.birth_admission_family f
                                 WHERE f.collection_name = 'dot_tools' AND f.required)$q$ INTO v_guarded;
    ELSE
      v_guarded := false;
    END IF;
    IF v_guarded THEN
      GRANT INSERT, DELETE ON public.dot_tools TO birthgate_worker;
    ELSE
      REVOKE INSERT, DELETE ON public.dot_tools FROM birthgate_worker;
    END IF;
  END IF;
  GRANT SELECT ON public.meta_catalog, public.dot_config TO birthgate_worker;
  GRANT INSERT ON public.registry_changelog TO birthgate_worker;
  -- birth_registry: read only. Revoked explicitly (not merely not granted) so a re-run also takes
  -- back what an earlier version of this file granted in this database.
  REVOKE ALL ON public.birth_registry FROM birthgate_worker;
  GRANT SELECT ON public.birth_registry TO birthgate_worker;
  FOR v_rel IN
    SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind = 'S' AND c.relname LIKE ANY (ARRAY['dot_tools%', 'registry_changelog%'])
  LOOP
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO birthgate_worker', v_rel);
  END LOOP;
  FOR v_rel IN
    SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind = 'S' AND c.relname LIKE 'birth\_registry%'
  LOOP
    EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM birthgate_worker', v_rel);
  END LOOP;
END
$$;

-- The grants above are governed state (ACLs are fingerprinted): record them as a logged baseline set
-- so the drift watch does not take the worker's own rights for drift.
DO $$
BEGIN
  IF to_regprocedure('public.fn_drift_capture_step(text)') IS NOT NULL THEN
    PERFORM public.fn_drift_capture_step('roles/birthgate_worker');
  END IF;
END
$$;

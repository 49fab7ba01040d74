-- Step 17 holds: the findings and the watch's row, the tick, the logged rebaseline (operators only) and
-- the permit sweep's reconcile.
SELECT (to_regclass('public.birth_drift_finding') IS NOT NULL
        AND to_regclass('public.birth_drift_watch') IS NOT NULL
        AND to_regprocedure('public.fn_drift_watch_tick(text)') IS NOT NULL
        AND to_regprocedure('public.fn_drift_accept(text,text,text)') IS NOT NULL
        AND to_regprocedure('public.fn_permit_reconcile_closed(bigint,text,text,text,timestamptz,text)') IS NOT NULL
        -- CASE: has_function_privilege raises for a role or function that does not exist (the entry
        -- drift check runs every verify, before step 1 made the role)
        AND CASE WHEN to_regrole('birthgate_operator') IS NULL OR to_regprocedure('public.fn_drift_accept(text,text,text)') IS NULL
                 THEN false
                 ELSE has_function_privilege(to_regrole('birthgate_operator')::oid, to_regprocedure('public.fn_drift_accept(text,text,text)')::oid, 'EXECUTE')
            END) AS ok,
       format('findings=%s watch=%s tick=%s accept=%s reconcile=%s', to_regclass('public.birth_drift_finding') IS NOT NULL,
              to_regclass('public.birth_drift_watch') IS NOT NULL,
              to_regprocedure('public.fn_drift_watch_tick(text)') IS NOT NULL,
              to_regprocedure('public.fn_drift_accept(text,text,text)') IS NOT NULL,
              to_regprocedure('public.fn_permit_reconcile_closed(bigint,text,text,text,timestamptz,text)') IS NOT NULL) AS detail;

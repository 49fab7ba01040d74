-- KB-7D57 step 10 holds: trg_dt_finalize is a constraint trigger AFTER INSERT on dot_tools,
-- DEFERRABLE INITIALLY DEFERRED, ENABLE ALWAYS, calling fn_dt_finalize.
SELECT coalesce(bool_and(t.tgenabled = 'A' AND t.tgdeferrable AND t.tginitdeferred AND t.tgconstraint <> 0
                         AND t.tgfoid = to_regprocedure('public.fn_dt_finalize()')
                         AND (t.tgtype & 2) = 0 AND (t.tgtype & 4) <> 0), false)
       AND to_regprocedure('public.fn_admission_insert_dot_tools(bigint,jsonb)') IS NOT NULL AS ok,
       coalesce(string_agg(format('%s enabled=%s def=%s', t.tgname, t.tgenabled, pg_get_triggerdef(t.oid)), '; '),
                'trg_dt_finalize absent') AS detail
FROM pg_trigger t
WHERE t.tgrelid = 'public.dot_tools'::regclass AND t.tgname = 'trg_dt_finalize';

-- Step 16 holds: the admission's dims (gate_drift, the three data-level invariants, registry coverage)
-- are computed, the DDL ledger's event triggers are ENABLE ALWAYS, and gate_drift is mirrored for the
-- estate's guard.
SELECT (to_regprocedure('public.fn_drift_check()') IS NOT NULL
        AND to_regprocedure('public.fn_admission_preflight(text,text)') IS NOT NULL
        AND to_regprocedure('public.fn_admission_open(text,text,text,integer,text,text,text)') IS NOT NULL
        AND to_regclass('public.birth_admission_dim') IS NOT NULL
        AND to_regprocedure('public.fn_dim_registry_coverage()') IS NOT NULL
        AND (SELECT count(*) FROM pg_catalog.pg_event_trigger
              WHERE evtname IN ('trg_birthgate_ddl_ledger', 'trg_birthgate_drop_ledger', 'trg_guard_trigger_ddl', 'trg_guard_trigger_drop')
                AND evtenabled = 'A') = 4
        AND EXISTS (SELECT 1 FROM public.dot_block_dim_source WHERE dim = 'gate_drift')
        AND EXISTS (SELECT 1 FROM public.dot_action_block_policy WHERE action = 'birth_admit' AND dim = 'gate_drift')) AS ok,
       format('fn_drift_check=%s dims=%s registry coverage=%s dim source=%s policy=%s', to_regprocedure('public.fn_drift_check()') IS NOT NULL,
              to_regclass('public.birth_admission_dim') IS NOT NULL, to_regprocedure('public.fn_dim_registry_coverage()') IS NOT NULL,
              EXISTS (SELECT 1 FROM public.dot_block_dim_source WHERE dim = 'gate_drift'),
              EXISTS (SELECT 1 FROM public.dot_action_block_policy WHERE action = 'birth_admit' AND dim = 'gate_drift')) AS detail;

-- Step 16 holds: gate_drift is a computed dim and blocks the birth_admit action.
SELECT (to_regprocedure('public.fn_drift_check()') IS NOT NULL
        AND to_regprocedure('public.fn_admission_preflight(text,text)') IS NOT NULL
        AND EXISTS (SELECT 1 FROM dot_block_dim_source WHERE dim = 'gate_drift')
        AND EXISTS (SELECT 1 FROM dot_action_block_policy WHERE action = 'birth_admit' AND dim = 'gate_drift')) AS ok,
       format('fn_drift_check=%s dim source=%s policy=%s', to_regprocedure('public.fn_drift_check()') IS NOT NULL,
              EXISTS (SELECT 1 FROM dot_block_dim_source WHERE dim = 'gate_drift'),
              EXISTS (SELECT 1 FROM dot_action_block_policy WHERE action = 'birth_admit' AND dim = 'gate_drift')) AS detail;

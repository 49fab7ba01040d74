-- Step 15 holds: the break-glass ledger, its function, and the precheck that honours it.
SELECT (to_regclass('public.birth_break_glass') IS NOT NULL
        AND to_regprocedure('public.fn_break_glass_open(text,text,text,text,text,bigint,text)') IS NOT NULL
        AND coalesce(pg_get_functiondef(to_regprocedure('public.fn_admission_precheck(text,text,bigint)')) LIKE '%p_break_glass_id IS NULL%', false)) AS ok,
       format('ledger=%s fn_break_glass_open=%s', to_regclass('public.birth_break_glass') IS NOT NULL,
              to_regprocedure('public.fn_break_glass_open(text,text,text,text,text,bigint,text)') IS NOT NULL) AS detail;

-- Step 14 holds: a validated status CHECK (born, retired) and fn_birth_retire.
SELECT (EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'public.birth_registry'::regclass
                  AND conname = 'birth_registry_status_check' AND convalidated)
        AND to_regprocedure('public.fn_birth_retire(text,text,text,text)') IS NOT NULL
        AND to_regprocedure('public.fn_admission_rollback(bigint,text,text)') IS NOT NULL
        AND to_regclass('public.birth_status_transition') IS NOT NULL) AS ok,
       coalesce((SELECT format('%s validated=%s', pg_get_constraintdef(oid), convalidated) FROM pg_constraint
                  WHERE conrelid = 'public.birth_registry'::regclass AND conname = 'birth_registry_status_check'),
                'birth_registry_status_check absent') AS detail;

-- Step 13 holds: dot_tools has a registered rule that all of its real codes pass, and check (3) of
-- fn_pre_birth_check reads the registry instead of the hardcoded rule alone.
SELECT (EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'public.meta_catalog'::regclass
                  AND attname = 'code_pattern' AND NOT attisdropped)
        AND to_regclass('public.v_birth_code_rule_coverage') IS NOT NULL
        AND pg_get_functiondef('public.fn_pre_birth_check(text,text,text,text)'::regprocedure) LIKE '%code_pattern%'
        AND CASE WHEN to_regclass('public.v_birth_code_rule_coverage') IS NULL THEN false ELSE
              (xpath('/row/ok/text()', query_to_xml(
                $q$SELECT coalesce(bool_and(status = 'OK' AND rule_source = 'registry'), false) AS ok
                     FROM public.fn_birth_code_rule_coverage() WHERE collection_name = 'dot_tools'$q$,
                false, true, '')))[1]::text::boolean END) AS ok,
       'dot_tools code rule registered and covering its rows; fn_pre_birth_check registry-driven' AS detail;

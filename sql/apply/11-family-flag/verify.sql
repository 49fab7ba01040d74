-- KB-7D57 step 11 holds: the flag is set for dot_tools, and for no other family, in the gate's own
-- table (birth_admission_family) and in its dot_config mirror; the entry snapshot exists.
SELECT (to_regclass('public.birth_admission_family') IS NOT NULL
        AND to_regclass('public.birth_admission_entry') IS NOT NULL
        AND EXISTS (SELECT 1 FROM public.dot_config WHERE collection_name = 'dot_tools'
                      AND config_key = 'birth_admission_required' AND config_value = 'true'::jsonb)
        AND NOT EXISTS (SELECT 1 FROM public.dot_config WHERE config_key = 'birth_admission_required'
                          AND collection_name <> 'dot_tools' AND config_value = 'true'::jsonb)
        AND CASE WHEN to_regclass('public.birth_admission_family') IS NULL THEN false ELSE
              (xpath('/row/ok/text()', query_to_xml(
                $q$SELECT coalesce(bool_and(required = (collection_name = 'dot_tools')), false)
                          AND bool_or(collection_name = 'dot_tools') AS ok
                     FROM public.birth_admission_family$q$, false, true, '')))[1]::text::boolean END) AS ok,
       coalesce((SELECT string_agg(format('%s=%s', collection_name, config_value), ', ' ORDER BY collection_name)
                   FROM public.dot_config WHERE config_key = 'birth_admission_required'), 'flag unset') AS detail;

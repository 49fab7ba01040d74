-- KB-7D57 step 11 holds: the flag is true for dot_tools, and for no other family.
SELECT (EXISTS (SELECT 1 FROM dot_config WHERE collection_name = 'dot_tools'
                  AND config_key = 'birth_admission_required' AND config_value = 'true'::jsonb)
        AND NOT EXISTS (SELECT 1 FROM dot_config WHERE config_key = 'birth_admission_required'
                          AND collection_name <> 'dot_tools' AND config_value = 'true'::jsonb)) AS ok,
       coalesce((SELECT string_agg(format('%s=%s', collection_name, config_value), ', ' ORDER BY collection_name)
                   FROM dot_config WHERE config_key = 'birth_admission_required'), 'flag unset') AS detail;

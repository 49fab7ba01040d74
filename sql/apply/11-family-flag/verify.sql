-- KB-7D57 step 11 holds: the flag is set for dot_tools, and for no other family.
SELECT (fn_family_flag('dot_tools', 'birth_admission_required')
        AND NOT EXISTS (SELECT 1 FROM dot_config WHERE key = 'birth_admission_required' AND dot_code <> 'dot_tools'
                          AND lower(value) IN ('true', 't', 'on', '1', 'yes'))) AS ok,
       coalesce((SELECT string_agg(format('%s=%s', dot_code, value), ', ' ORDER BY dot_code)
                   FROM dot_config WHERE key = 'birth_admission_required'), 'flag unset') AS detail;

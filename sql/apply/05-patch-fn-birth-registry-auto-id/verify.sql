-- KB-7D57 step 5 holds: fn_birth_registry_auto_id resolves conflicts on the composite only and no longer names the
-- single-column target, has the composite guard, runs as SECURITY DEFINER with search_path pinned to public,
-- pg_temp, and PUBLIC cannot bind it to a trigger. (OID stability is proven by the tests against the entry
-- fingerprint.) Issue 9 item 5: the code is matched, not the text, as in step 4's verify.sql (whitespace and
-- case free, comments left out with the expression up.sql uses).
SELECT coalesce(bool_and(code ~* 'ON\s+CONFLICT\s*\(\s*entity_code\s*,\s*collection_name\s*\)\s*DO\s+NOTHING'
                         AND code !~* 'ON\s+CONFLICT\s*\(\s*entity_code\s*\)'
                         AND code ~* '(\w+\.)?collection_name\s*=\s*TG_TABLE_NAME'
                         AND prosecdef
                         AND proconfig IS NOT DISTINCT FROM ARRAY['search_path=public, pg_temp']
                         AND NOT public_execute), false) AS ok,
       coalesce(max(format('fn_birth_registry_auto_id oid=%s md5=%s security_definer=%s config=%s public_execute=%s',
                           oid, md5(def), prosecdef, proconfig, public_execute)), 'fn_birth_registry_auto_id absent') AS detail
FROM (SELECT p.oid, pg_get_functiondef(p.oid) AS def, p.prosecdef, p.proconfig,
             regexp_replace(p.prosrc, $re$('([^']|'')*')|--[^\n]*|/\*([^*]|\*+[^*/])*\*+/$re$, '\1', 'g') AS code,
             has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'public' AND p.proname = 'fn_birth_registry_auto_id' AND p.pronargs = 0) f;

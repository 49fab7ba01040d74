-- KB-2590 §4: OID and md5(pg_get_functiondef) of the key functions, computed live (the seed md5s
-- belong to the production bodies and are never copied here).
SELECT coalesce(jsonb_agg(jsonb_build_object(
         'name', f.name,
         'oid', p.oid::bigint,
         'md5', CASE WHEN p.oid IS NULL THEN NULL ELSE md5(pg_get_functiondef(p.oid)) END,
         'triggerBindings', (SELECT count(*) FROM pg_trigger t WHERE t.tgfoid = p.oid AND NOT t.tgisinternal))
       ORDER BY f.ord), '[]'::jsonb) AS doc
  FROM unnest(ARRAY['fn_birth_registry_auto', 'fn_birth_gate', 'fn_birth_registry_auto_id']) WITH ORDINALITY AS f(name, ord)
  LEFT JOIN pg_proc p ON p.proname = f.name AND p.pronamespace = current_schema()::regnamespace;

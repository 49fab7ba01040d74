-- KB-7D57 "Backup commands (run first)", read from the catalog instead of pg_dump so it works with
-- any client: the schema of birth_registry and dot_tools (columns, constraints, indexes, triggers
-- with tgenabled) and pg_get_functiondef of every function their triggers call, plus the
-- fn_hash_pre.txt trio. $1 = text[] of table names in public.
WITH t AS (
  SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'public' AND c.relname = ANY ($1::text[]) AND c.relkind IN ('r', 'p')
), tables AS (
  SELECT jsonb_object_agg(t.relname, jsonb_build_object(
    'owner', pg_get_userbyid((SELECT relowner FROM pg_class WHERE oid = t.oid)),
    'columns', (SELECT jsonb_agg(jsonb_build_object(
                   'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
                   'default', pg_get_expr(d.adbin, d.adrelid), 'identity', nullif(a.attidentity, '')) ORDER BY a.attnum)
                  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped),
    'constraints', coalesce((SELECT jsonb_agg(jsonb_build_object('name', k.conname, 'def', pg_get_constraintdef(k.oid),
                                                                 'deferrable', k.condeferrable, 'deferred', k.condeferred)
                                              ORDER BY k.conname)
                               FROM pg_constraint k WHERE k.conrelid = t.oid), '[]'::jsonb),
    'indexes', coalesce((SELECT jsonb_agg(jsonb_build_object('name', ic.relname, 'def', pg_get_indexdef(i.indexrelid),
                                                             'valid', i.indisvalid,
                                                             'constraint_index', EXISTS (SELECT 1 FROM pg_constraint k
                                                                                          WHERE k.conindid = i.indexrelid AND k.conrelid = t.oid)) ORDER BY ic.relname)
                           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = t.oid), '[]'::jsonb),
    'triggers', coalesce((SELECT jsonb_agg(jsonb_build_object('name', g.tgname, 'enabled', g.tgenabled,
                                                              'function', g.tgfoid::regprocedure::text,
                                                              'def', pg_get_triggerdef(g.oid)) ORDER BY g.tgname)
                            FROM pg_trigger g WHERE g.tgrelid = t.oid AND NOT g.tgisinternal), '[]'::jsonb)
  )) AS j FROM t
), fns AS (
  SELECT coalesce(jsonb_object_agg(p.oid::regprocedure::text, jsonb_build_object(
           'oid', p.oid::bigint, 'md5', md5(pg_get_functiondef(p.oid)), 'def', pg_get_functiondef(p.oid))), '{}'::jsonb) AS j
    FROM pg_proc p
   WHERE p.oid IN (SELECT g.tgfoid FROM pg_trigger g JOIN t ON t.oid = g.tgrelid WHERE NOT g.tgisinternal)
      OR (p.pronamespace = 'public'::regnamespace
          AND p.proname IN ('fn_birth_registry_auto', 'fn_birth_registry_auto_id', 'fn_birth_gate', 'fn_pre_birth_check'))
), hashes AS (
  -- KB-7D57: select proname, md5(pg_get_functiondef(oid)) from pg_proc where proname in (…)
  SELECT coalesce(jsonb_agg(jsonb_build_object('proname', p.proname, 'oid', p.oid::bigint, 'md5', md5(pg_get_functiondef(p.oid)))
                            ORDER BY p.proname), '[]'::jsonb) AS j
    FROM pg_proc p
   WHERE p.pronamespace = 'public'::regnamespace
     AND p.proname IN ('fn_birth_registry_auto', 'fn_birth_registry_auto_id', 'fn_birth_gate')
)
SELECT jsonb_build_object('server_version', current_setting('server_version'), 'database', current_database(),
                          'taken_at', clock_timestamp(), 'tables', coalesce(tables.j, '{}'::jsonb),
                          'functions', fns.j, 'function_hashes', hashes.j) AS backup
FROM tables, fns, hashes;

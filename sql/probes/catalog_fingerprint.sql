-- The catalog fingerprint of the estate (KB-3A66 §2 "entry hash == exit hash"): one jsonb that the
-- packet runner, the rehearsal and the rollback tests compare before and after. It covers what the
-- apply packet may touch — function bodies and OIDs (OID-stable patches must keep them), constraints,
-- indexes, the trigger sets with tgenabled (ENABLE ALWAYS is part of the state), tables and their
-- columns, views, event triggers, owners and privileges (normalised) — plus the few row counts the rehearsal proves unchanged
-- (birth_registry rows, dot_tools rows and unborn, permit table absence).
-- Schema public only; names sorted so equal states give byte-equal jsonb.
WITH fns AS (
  SELECT jsonb_object_agg(p.oid::regprocedure::text,
           jsonb_build_object('oid', p.oid::bigint, 'md5', md5(pg_get_functiondef(p.oid)))) AS j
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')
), cons AS (
  SELECT jsonb_object_agg(c.conrelid::regclass::text || '.' || c.conname,
           jsonb_build_object('type', c.contype, 'def', pg_get_constraintdef(c.oid),
                              'deferrable', c.condeferrable, 'deferred', c.condeferred)) AS j
  FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
  WHERE n.nspname = 'public' AND c.conrelid <> 0
), idx AS (
  SELECT jsonb_object_agg(i.indexname, jsonb_build_object('def', i.indexdef,
           'valid', (SELECT x.indisvalid FROM pg_index x WHERE x.indexrelid = format('public.%I', i.indexname)::regclass))) AS j
  FROM pg_indexes i WHERE i.schemaname = 'public'
), trg AS (
  SELECT jsonb_object_agg(t.tgrelid::regclass::text || '.' || t.tgname,
           jsonb_build_object('enabled', t.tgenabled, 'function', t.tgfoid::regproc::text,
                              'def', pg_get_triggerdef(t.oid))) AS j
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND NOT t.tgisinternal
), births AS (
  -- KB-7D57 "166 trigger bindings intact": how many triggers call fn_birth_registry_auto.
  SELECT count(*) AS n FROM pg_trigger t
  WHERE NOT t.tgisinternal AND t.tgfoid = to_regproc('public.fn_birth_registry_auto')
), tbl AS (
  SELECT jsonb_object_agg(c.relname, jsonb_build_object('kind', c.relkind, 'columns', md5(
           (SELECT string_agg(format('%s %s %s %s', a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                                     coalesce(pg_get_expr(d.adbin, d.adrelid), '')), ',' ORDER BY a.attnum)
              FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)),
           'view', CASE WHEN c.relkind IN ('v', 'm') THEN md5(pg_get_viewdef(c.oid)) END)) AS j
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
), evt AS (
  SELECT coalesce(jsonb_object_agg(e.evtname, jsonb_build_object('event', e.evtevent, 'enabled', e.evtenabled,
           'function', e.evtfoid::regproc::text)), '{}'::jsonb) AS j
  FROM pg_event_trigger e
), acls AS (
  -- Owners and privileges, normalised: a NULL ACL is its default, and the grants are compared as a
  -- sorted set (grantee:privilege:grantable), so a grant revoked again compares equal to the entry.
  SELECT jsonb_build_object(
    'schema', (SELECT format('%s|%s', pg_get_userbyid(n.nspowner), (SELECT string_agg(z.g, ',' ORDER BY z.g) FROM (SELECT format('%s:%s:%s', CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END, x.privilege_type, x.is_grantable) AS g FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) x) z))
                 FROM pg_namespace n WHERE n.nspname = 'public'),
    'relations', (SELECT jsonb_object_agg(c.relname, format('%s|%s', pg_get_userbyid(c.relowner), (SELECT string_agg(z.g, ',' ORDER BY z.g) FROM (SELECT format('%s:%s:%s', CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END, x.privilege_type, x.is_grantable) AS g FROM aclexplode(coalesce(c.relacl, acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))) x) z)))
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')),
    'functions', (SELECT jsonb_object_agg(p.oid::regprocedure::text, format('%s|%s', pg_get_userbyid(p.proowner), (SELECT string_agg(z.g, ',' ORDER BY z.g) FROM (SELECT format('%s:%s:%s', CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END, x.privilege_type, x.is_grantable) AS g FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x) z)))
                    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p'))
  ) AS j
), config AS (
  -- The configuration rows the packet writes and its rollbacks take back (dot_config: the family flag's
  -- mirror; the estate's BLOCK-dim sources and policy: gate_drift), compared by content.
  SELECT jsonb_build_object(
    'dot_config', CASE WHEN to_regclass('public.dot_config') IS NULL THEN NULL ELSE
      (xpath('/row/h/text()', query_to_xml($q$SELECT md5(coalesce(string_agg(format('%s|%s|%s', collection_name, config_key, config_value), ','
                  ORDER BY collection_name, config_key), '')) AS h FROM public.dot_config$q$, false, true, '')))[1]::text END,
    'dot_block_dim_source', CASE WHEN to_regclass('public.dot_block_dim_source') IS NULL THEN NULL ELSE
      (xpath('/row/h/text()', query_to_xml($q$SELECT md5(coalesce(string_agg(format('%s|%s', dim, count_fn), ',' ORDER BY dim), '')) AS h
                  FROM public.dot_block_dim_source$q$, false, true, '')))[1]::text END,
    'dot_action_block_policy', CASE WHEN to_regclass('public.dot_action_block_policy') IS NULL THEN NULL ELSE
      (xpath('/row/h/text()', query_to_xml($q$SELECT md5(coalesce(string_agg(format('%s|%s', action, dim), ',' ORDER BY action, dim), '')) AS h
                  FROM public.dot_action_block_policy$q$, false, true, '')))[1]::text END
  ) AS j
), counts AS (
  -- Row counts through query_to_xml so the probe stays one statement even when a table is absent.
  SELECT jsonb_object_agg(t.name, CASE WHEN to_regclass(format('public.%I', t.name)) IS NULL THEN NULL ELSE
           (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM public.%I', t.name), false, true, '')))[1]::text::bigint
         END) AS j
  FROM (VALUES ('birth_registry'), ('dot_tools'), ('dot_config'), ('birth_admission_permit')) AS t(name)
), unborn AS (
  -- KB-3A66 §2 "dot_tools unborn 0→0".
  SELECT CASE WHEN to_regclass('public.dot_tools') IS NULL OR to_regclass('public.birth_registry') IS NULL THEN NULL ELSE
           (xpath('/row/n/text()', query_to_xml(
             'SELECT count(*) AS n FROM public.dot_tools d WHERE NOT EXISTS (SELECT 1 FROM public.birth_registry b
                WHERE b.entity_code = d.code AND b.collection_name = ''dot_tools'')', false, true, '')))[1]::text::bigint
         END AS n
)
SELECT jsonb_build_object(
  'functions', coalesce(fns.j, '{}'::jsonb),
  'constraints', coalesce(cons.j, '{}'::jsonb),
  'indexes', coalesce(idx.j, '{}'::jsonb),
  'triggers', coalesce(trg.j, '{}'::jsonb),
  'birth_trigger_bindings', births.n,
  'relations', coalesce(tbl.j, '{}'::jsonb),
  'event_triggers', evt.j,
  'acls', acls.j,
  'config', config.j,
  'permit_table_present', to_regclass('public.birth_admission_permit') IS NOT NULL,
  'row_counts', counts.j,
  'dot_tools_unborn', unborn.n
) AS fingerprint
FROM fns, cons, idx, trg, births, tbl, evt, acls, config, counts, unborn;

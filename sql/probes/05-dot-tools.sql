-- KB-2590 §5 and the trigger bindings of §4 / KB-4410 §A: dot_tools facts, the hardcoded code rule
-- as fn_pre_birth_check applies it (dot_tools, entity_species), the 166 / 16 bindings.
WITH rule AS (
  SELECT 'dot_tools' AS family, count(*) AS total,
         count(*) FILTER (WHERE EXISTS (SELECT 1 FROM fn_pre_birth_check('dot_tools', d.code, NULL, NULL) c
                                         WHERE c.check_name = 'code_format')) AS failing
    FROM dot_tools d
  UNION ALL
  SELECT 'entity_species', count(*),
         count(*) FILTER (WHERE EXISTS (SELECT 1 FROM fn_pre_birth_check('entity_species', s.code, NULL, NULL) c
                                         WHERE c.check_name = 'code_format'))
    FROM entity_species s
)
SELECT jsonb_build_object(
  'dotTools', jsonb_build_object(
    'columnCount', (SELECT count(*) FROM pg_attribute a
                     WHERE a.attrelid = 'dot_tools'::regclass AND a.attnum > 0 AND NOT a.attisdropped),
    'codeField', (SELECT mc.code_field FROM meta_catalog mc WHERE mc.collection_name = 'dot_tools'),
    'rowCount', (SELECT count(*) FROM dot_tools),
    'unborn', (SELECT count(*) FROM dot_tools d
                WHERE NOT EXISTS (SELECT 1 FROM birth_registry br
                                   WHERE br.entity_code = d.code AND br.collection_name = 'dot_tools')),
    'owner', (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = 'dot_tools'::regclass),
    'codeRuleFailing', (SELECT r.failing FROM rule r WHERE r.family = 'dot_tools'),
    'triggers', (SELECT jsonb_agg(jsonb_build_object(
                         'name', t.tgname,
                         'timing', CASE WHEN t.tgtype & 2 = 2 THEN 'BEFORE' WHEN t.tgtype & 64 = 64 THEN 'INSTEAD OF' ELSE 'AFTER' END,
                         'events', substring(pg_get_triggerdef(t.oid) FROM '(?:BEFORE|AFTER|INSTEAD OF) (.+?) ON '),
                         'function', t.tgfoid::regproc::text,
                         'args', substring(pg_get_triggerdef(t.oid) FROM 'EXECUTE FUNCTION [^(]+\((.*)\)$'),
                         'enabled', t.tgenabled::text,
                         'constraint', t.tgconstraint <> 0) ORDER BY t.tgname)
                   FROM pg_trigger t WHERE t.tgrelid = 'dot_tools'::regclass AND NOT t.tgisinternal)
  ),
  'entitySpecies', jsonb_build_object(
    'rowCount', (SELECT r.total FROM rule r WHERE r.family = 'entity_species'),
    'codeRuleFailing', (SELECT r.failing FROM rule r WHERE r.family = 'entity_species')
  ),
  'bindings', jsonb_build_object(
    'birthAutoTriggers', (SELECT count(*) FROM pg_trigger t
                           WHERE NOT t.tgisinternal AND t.tgfoid = to_regproc('fn_birth_registry_auto')),
    'birthAutoTables', (SELECT count(DISTINCT t.tgrelid) FROM pg_trigger t
                         WHERE NOT t.tgisinternal AND t.tgfoid = to_regproc('fn_birth_registry_auto')),
    'birthAutoIdTriggers', (SELECT count(*) FROM pg_trigger t
                             WHERE NOT t.tgisinternal AND t.tgfoid = to_regproc('fn_birth_registry_auto_id')),
    'birthGateTables', (SELECT coalesce(jsonb_agg(x.rel ORDER BY x.rel), '[]'::jsonb) FROM (
        SELECT DISTINCT t.tgrelid::regclass::text AS rel FROM pg_trigger t
         WHERE NOT t.tgisinternal AND t.tgtype & 2 = 2 AND t.tgfoid = to_regproc('fn_birth_gate')) x)
  )
) AS doc;

-- KB-2590 §2: birth_registry schema, constraints, indexes, status values, counts, owner.
WITH rel AS (SELECT 'birth_registry'::regclass AS oid)
SELECT jsonb_build_object(
  'columnCount', (SELECT count(*) FROM pg_attribute a, rel
                   WHERE a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped),
  'columns', (SELECT jsonb_agg(jsonb_build_object(
                       'name', a.attname,
                       'type', format_type(a.atttypid, a.atttypmod),
                       'notNull', a.attnotnull,
                       'default', pg_get_expr(d.adbin, d.adrelid)) ORDER BY a.attnum)
                FROM pg_attribute a CROSS JOIN rel
                LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
               WHERE a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped),
  'constraints', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'name', c.conname, 'type', c.contype::text, 'definition', pg_get_constraintdef(c.oid))
                         ORDER BY c.conname), '[]'::jsonb)
                    FROM pg_constraint c, rel WHERE c.conrelid = rel.oid),
  'indexes', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'name', i.indexrelid::regclass::text,
                       'definition', pg_get_indexdef(i.indexrelid),
                       'unique', i.indisunique,
                       'partial', i.indpred IS NOT NULL) ORDER BY i.indexrelid::regclass::text), '[]'::jsonb)
                FROM pg_index i, rel WHERE i.indrelid = rel.oid),
  'statusCheck', EXISTS (SELECT 1 FROM pg_constraint c, rel
                          WHERE c.conrelid = rel.oid AND c.contype = 'c' AND pg_get_constraintdef(c.oid) ~ 'status'),
  'statusValues', (SELECT coalesce(jsonb_agg(jsonb_build_object('status', s.status, 'rows', s.n) ORDER BY s.status), '[]'::jsonb)
                     FROM (SELECT br.status, count(*) AS n FROM birth_registry br GROUP BY br.status) s),
  'rowCount', (SELECT count(*) FROM birth_registry),
  'distinctCodes', (SELECT count(DISTINCT br.entity_code) FROM birth_registry br),
  'distinctCollections', (SELECT count(DISTINCT br.collection_name) FROM birth_registry br),
  'owner', (SELECT pg_get_userbyid(c.relowner) FROM pg_class c, rel WHERE c.oid = rel.oid)
) AS doc;

-- KB-2590 §3: can UNIQUE (entity_code, collection_name) replace UNIQUE (entity_code)?
SELECT jsonb_build_object(
  'codesInMultipleCollections', (SELECT count(*) FROM (
      SELECT br.entity_code FROM birth_registry br GROUP BY br.entity_code
      HAVING count(DISTINCT br.collection_name) > 1) x),
  'compositeDuplicates', (SELECT count(*) FROM (
      SELECT 1 FROM birth_registry br GROUP BY br.entity_code, br.collection_name HAVING count(*) > 1) x),
  'nullCollectionRows', (SELECT count(*) FROM birth_registry br WHERE br.collection_name IS NULL),
  'fkReferences', (SELECT count(*) FROM pg_constraint c
                    WHERE c.contype = 'f' AND c.confrelid = 'birth_registry'::regclass),
  'onConflictEntityCodeFunctions', (SELECT coalesce(jsonb_agg(p.proname::text ORDER BY p.proname), '[]'::jsonb)
      FROM pg_proc p
     WHERE p.pronamespace = current_schema()::regnamespace
       AND p.prosrc ~* 'on\s+conflict\s*\(\s*entity_code\s*\)')
) AS doc;

-- KB-2590 §3 "Composite-unique feasibility (decisive)", the same five probes, read-only.
SELECT
  (SELECT count(*) FROM (SELECT entity_code FROM birth_registry GROUP BY entity_code
                          HAVING count(DISTINCT collection_name) > 1) x)::bigint                  AS codes_in_many_collections,
  (SELECT count(*) FROM (SELECT 1 FROM birth_registry GROUP BY entity_code, collection_name
                          HAVING count(*) > 1) x)::bigint                                         AS duplicate_pairs,
  (SELECT count(*) FROM birth_registry WHERE collection_name IS NULL)::bigint                     AS null_collections,
  (SELECT count(*) FROM pg_constraint WHERE contype = 'f'
      AND confrelid = 'public.birth_registry'::regclass)::bigint                                  AS fk_references,
  (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
      AND pg_get_functiondef(p.oid) ~ 'ON CONFLICT \(entity_code\)')::bigint                      AS on_conflict_entity_code_functions,
  (SELECT count(*) FROM birth_registry)::bigint                                                   AS births,
  (SELECT count(DISTINCT collection_name) FROM birth_registry)::bigint                            AS collections;

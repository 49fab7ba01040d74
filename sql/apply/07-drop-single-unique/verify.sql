-- KB-7D57 step 7 holds: the single-column unique is gone and the composite is there to replace it.
SELECT (NOT EXISTS (SELECT 1 FROM pg_constraint
                     WHERE conrelid = 'public.birth_registry'::regclass AND conname = 'birth_registry_entity_code_unique')
        AND NOT EXISTS (SELECT 1 FROM pg_indexes
                         WHERE schemaname = 'public' AND indexname = 'birth_registry_entity_code_unique')
        AND EXISTS (SELECT 1 FROM pg_constraint
                     WHERE conrelid = 'public.birth_registry'::regclass AND conname = 'birth_registry_code_collection_uq')) AS ok,
       format('single-column unique present=%s, composite present=%s',
              EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'public.birth_registry'::regclass
                        AND conname = 'birth_registry_entity_code_unique'),
              EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'public.birth_registry'::regclass
                        AND conname = 'birth_registry_code_collection_uq')) AS detail;

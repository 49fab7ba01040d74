-- KB-7D57 step 3 holds: birth_registry_code_collection_uq is a UNIQUE constraint on the composite.
SELECT count(*) = 1 AS ok,
       coalesce(max(format('constraint %s: %s', conname, pg_get_constraintdef(oid))),
                'constraint birth_registry_code_collection_uq absent') AS detail
FROM pg_constraint
WHERE conrelid = 'public.birth_registry'::regclass
  AND conname = 'birth_registry_code_collection_uq'
  AND contype = 'u'
  AND pg_get_constraintdef(oid) = 'UNIQUE (entity_code, collection_name)';

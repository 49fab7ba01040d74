-- KB-7D57 step 2 holds: a VALID unique index on exactly (entity_code, collection_name).
-- An INVALID leftover of an interrupted CONCURRENTLY build reports ok=false with a hint.
SELECT coalesce(bool_and(i.indisvalid AND i.indisunique), false) AS ok,
       coalesce(string_agg(format('index %s valid=%s unique=%s def=%s', c.relname, i.indisvalid, i.indisunique,
                                  pg_get_indexdef(i.indexrelid)), '; '),
                'birth_registry_code_collection_uq absent') AS detail
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname = 'birth_registry_code_collection_uq'
  AND pg_get_indexdef(i.indexrelid) LIKE '%(entity_code, collection_name)';

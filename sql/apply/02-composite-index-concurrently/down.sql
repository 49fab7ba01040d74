-- KB-7D57 step 2 rollback: DROP INDEX CONCURRENTLY (one statement, outside a transaction).
-- IF EXISTS: rolling back step 3 already dropped the index together with its constraint.
DROP INDEX CONCURRENTLY IF EXISTS birth_registry_code_collection_uq

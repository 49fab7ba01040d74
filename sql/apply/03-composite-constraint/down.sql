-- KB-7D57 step 3 rollback: ALTER TABLE … DROP CONSTRAINT. Postgres drops the constraint's index
-- with it, so step 2's rollback then finds nothing to drop (it uses IF EXISTS).
ALTER TABLE birth_registry DROP CONSTRAINT IF EXISTS birth_registry_code_collection_uq;

-- KB-7D57 step 2: build the composite unique index online. CONCURRENTLY cannot run inside a
-- transaction block, so this file holds exactly one statement and the runner sends it on its own
-- (meta.json "concurrently": true). KB-2590 §3: 0 duplicate (entity_code, collection_name) pairs
-- across 1,126,728 rows, so the build succeeds; if it is interrupted it leaves an INVALID index,
-- which verify.sql reports and the runner drops before retrying.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS birth_registry_code_collection_uq
  ON birth_registry (entity_code, collection_name)

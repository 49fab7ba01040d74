-- KB-7D57 step 7 rollback, part 1 of 2 (meta.json "downConcurrently"): build the single-column
-- unique index online. A full ADD CONSTRAINT … UNIQUE (entity_code) would hold ACCESS EXCLUSIVE on
-- birth_registry for the whole build over 1,126,728 rows; CREATE INDEX CONCURRENTLY takes SHARE
-- UPDATE EXCLUSIVE, so reads and births go on. It cannot run inside a transaction block, so this
-- file is exactly one statement and the runner sends it alone, before down.sql (part 2), which
-- promotes the index with ADD CONSTRAINT … UNIQUE USING INDEX (a brief lock, as step 3's).
-- The runner runs down-precheck.sql first. A code born in a second collection during the build makes
-- it fail (unique violation, refused as BG428); the runner then drops the INVALID leftover, as it does
-- for step 2. IF NOT EXISTS keeps the file re-runnable: an INVALID leftover is dropped before each
-- try, a valid index is kept (down.sql checks its definition before promoting it).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS birth_registry_entity_code_unique
  ON public.birth_registry (entity_code)

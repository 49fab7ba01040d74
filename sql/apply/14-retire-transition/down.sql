-- Rollback of step 14. Retired births keep status 'retired' (a plain value once the CHECK is gone);
-- their transition log goes with the table.
DROP FUNCTION IF EXISTS fn_admission_rollback(bigint, text, text);
DROP FUNCTION IF EXISTS fn_birth_retire(text, text, text, text);
DROP TABLE IF EXISTS birth_status_transition;
ALTER TABLE birth_registry DROP CONSTRAINT IF EXISTS birth_registry_status_check;

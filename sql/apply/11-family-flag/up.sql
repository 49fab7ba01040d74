-- KB-7D57 step 11: the family flag birth_admission_required = true for dot_tools only (KB-4410 §F:
-- one family, never a global flip). From this commit on the gate of step 9 enforces.
INSERT INTO dot_config (collection_name, config_key, config_value, updated_by)
VALUES ('dot_tools', 'birth_admission_required', 'true'::jsonb, 'KB-7D57 step 11')
ON CONFLICT (collection_name, config_key)
DO UPDATE SET config_value = EXCLUDED.config_value, updated_at = now(), updated_by = EXCLUDED.updated_by;

-- KB-7D57 step 11: the family flag birth_admission_required = true for dot_tools only (KB-4410 §F:
-- one family, never a global flip). From this commit on the gate of step 9 enforces.
UPDATE dot_config SET value = 'true'
 WHERE dot_code = 'dot_tools' AND key = 'birth_admission_required';
INSERT INTO dot_config (dot_code, key, value)
SELECT 'dot_tools', 'birth_admission_required', 'true'
 WHERE NOT EXISTS (SELECT 1 FROM dot_config WHERE dot_code = 'dot_tools' AND key = 'birth_admission_required');

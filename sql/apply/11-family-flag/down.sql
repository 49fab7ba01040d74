-- KB-7D57 step 11 rollback: "unset flag" — the entry state has no such row (dot_config is empty as found).
DELETE FROM dot_config WHERE collection_name = 'dot_tools' AND config_key = 'birth_admission_required';

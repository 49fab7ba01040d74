-- KB-7D57 step 11 rollback: "unset flag" — the entry state has no such row.
DELETE FROM dot_config WHERE dot_code = 'dot_tools' AND key = 'birth_admission_required';

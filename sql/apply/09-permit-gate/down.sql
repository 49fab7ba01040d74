-- KB-7D57 step 9 rollback: "DROP TRIGGER … ; DROP FUNCTION …".
DROP TRIGGER IF EXISTS trg_permit_gate_dot_tools ON dot_tools;
DROP FUNCTION IF EXISTS fn_dot_tools_permit_gate();
DROP FUNCTION IF EXISTS fn_admission_precheck(text, text);
DROP FUNCTION IF EXISTS fn_family_flag(text, text);

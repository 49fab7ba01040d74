-- KB-7D57 step 10 rollback: "DROP TRIGGER … ; DROP FUNCTION …".
DROP FUNCTION IF EXISTS fn_admission_insert_dot_tools(bigint, jsonb);
DROP TRIGGER IF EXISTS trg_dt_finalize ON dot_tools;
DROP FUNCTION IF EXISTS fn_dt_finalize();

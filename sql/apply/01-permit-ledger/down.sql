-- KB-7D57 step 1 rollback: "DROP TABLE birth_admission_permit;" — plus what step 1 created with it.
DROP FUNCTION IF EXISTS fn_admission_state(bigint);
DROP FUNCTION IF EXISTS fn_permit_expire_due(text);
DROP FUNCTION IF EXISTS fn_permit_issue(text, text, text, integer, text, text, text);
DROP FUNCTION IF EXISTS fn_permit_request(text, text, text, integer, text, text, text);
DROP FUNCTION IF EXISTS fn_permit_transition(bigint, text, text, text);
DROP FUNCTION IF EXISTS fn_permit_move(bigint, text, text, text, bigint, bigint);
DROP FUNCTION IF EXISTS fn_admission_require_collection(text);
DROP FUNCTION IF EXISTS fn_admission_require_text(text, text, integer, boolean);
DROP TABLE IF EXISTS birth_admission_permit_transition;
DROP TABLE IF EXISTS birth_admission_permit;

-- KB-7D57 step 6: "Smoke test in a txn (BEGIN…ROLLBACK): one managed insert births correctly under
-- composite" — "none committed". Chosen form: one DO block whose inner block does the insert and the
-- checks, then raises a sentinel (SQLSTATE BGS06) carrying the findings. The inner block's exception
-- handler is a savepoint rollback, so the insert, its birth and its audit rows are undone before
-- the block returns; the outer block then judges the findings and fails the step loudly if the birth
-- was wrong. The runner needs nothing special: the file succeeds (leaving no state) or raises.
-- What is not transactional is not undone: the dot_tools identity sequence advances by one.
-- SECURITY.md: an estate table is written as its owner, so triggers the owner put on it never run
-- with the applying superuser's rights.
SELECT set_config('role', pg_catalog.pg_get_userbyid(c.relowner)::text, true) FROM pg_catalog.pg_class c
 WHERE c.oid = 'public.dot_tools'::regclass;
DO $$
DECLARE
  v_code     text := 'BGSMOKE-' || pg_current_xact_id()::text;
  v_id       bigint;
  v_findings text;
  v_here     integer;
  v_anywhere integer;
BEGIN
  BEGIN
    -- dot_tools carries the duplicate AFTER INSERT births (birth_trigger_dot_tools, trg_birth_dot_tools,
    -- KB-2590 §5): both fire, the composite guard and conflict target must leave exactly one birth.
    INSERT INTO dot_tools (code, name, _dot_origin)
    VALUES (v_code, 'birthgate KB-7D57 step-6 smoke test', 'birthgate-apply')
    RETURNING id INTO v_id;
    SELECT count(*) FILTER (WHERE collection_name = 'dot_tools'), count(*)
      INTO v_here, v_anywhere
      FROM birth_registry WHERE entity_code = v_code;
    RAISE EXCEPTION USING ERRCODE = 'BGS06', MESSAGE = format('%s|%s|%s', v_id, v_here, v_anywhere);
  EXCEPTION WHEN SQLSTATE 'BGS06' THEN
    GET STACKED DIAGNOSTICS v_findings = MESSAGE_TEXT;
  END;

  IF split_part(v_findings, '|', 2) <> '1' OR split_part(v_findings, '|', 3) <> '1' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG500',
      MESSAGE = format('step-6 smoke test failed: dot_tools row %s of %s was born %s time(s) in dot_tools, %s in all',
                       split_part(v_findings, '|', 1), v_code, split_part(v_findings, '|', 2), split_part(v_findings, '|', 3));
  END IF;
  IF EXISTS (SELECT 1 FROM dot_tools WHERE code = v_code) OR EXISTS (SELECT 1 FROM birth_registry WHERE entity_code = v_code) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG500', MESSAGE = 'step-6 smoke test left state behind';
  END IF;
  RAISE NOTICE 'KB-7D57 step 6 smoke test passed: one managed insert born exactly once under the composite; rolled back';
END
$$;
RESET ROLE;

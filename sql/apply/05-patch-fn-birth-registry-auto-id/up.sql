-- KB-7D57 step 5: OID-stable body swap of fn_birth_registry_auto_id: conflict target
-- (entity_code, collection_name) and the composite EXISTS guard its sibling already had, so an
-- id-keyed row is born once in its own collection. Bindings keep pointing at the same OID.
--
-- Issue 9 item 5: derived from the live body, as step 4 (see its up.sql): two checked edits to the
-- text as found, nothing else. (1) The single-column conflict target, exactly once in the code and
-- nowhere else in the text, becomes the composite. (2) The guard goes right after the anchor
-- `IF v_id IS NULL THEN RETURN NULL; END IF;` (exactly once), and checks the very code the INSERT
-- births, `TG_TABLE_NAME || ':' || v_id` (exactly once in its VALUES); a body that already has an
-- EXISTS guard over birth_registry is not the entry shape. Anything else is refused with BG428 before a
-- change. birthgate.live_body_md5 (the runner's capture) and birthgate.expect_md5 (the owner's
-- reviewed md5) are checked as in step 4.
--
-- Least privilege, as in step 4 (see its up.sql): SECURITY DEFINER with a pinned search_path, so the
-- id-keyed families (pivot_results, …) birth with the owner's rights instead of the inserting role's,
-- exactly as before otherwise; EXECUTE is taken from PUBLIC so no one else can bind it to a table.
DO $$
DECLARE
  v_fn      oid := to_regprocedure('public.fn_birth_registry_auto_id()');
  v_p       record;
  v_def     text;
  v_code    text;
  v_new     text;
  v_tail    text;
  v_q       text;
  v_at      integer;
  v_end     integer;
  v_counts  integer[];
  v_want    text := coalesce(current_setting('birthgate.live_body_md5', true), '');
  v_expect  text := coalesce(current_setting('birthgate.expect_md5', true), '');
  -- The code without its comments (string literals kept): the same expression as verify.sql.
  c_strip   constant text := $re$('([^']|'')*')|--[^\n]*|/\*([^*]|\*+[^*/])*\*+/$re$;
  c_target  constant text := 'ON\s+CONFLICT\s*\(\s*entity_code\s*\)\s*DO\s+NOTHING';
  c_null    constant text := 'IF\s+v_id\s+IS\s+NULL\s+THEN\s+RETURN\s+NULL\s*;\s*END\s+IF\s*;';
  c_born    constant text := $re$VALUES\s*\(\s*TG_TABLE_NAME\s*\|\|\s*':'\s*\|\|\s*v_id\s*,$re$;
  c_exists  constant text := 'EXISTS\s*\(\s*SELECT\M[^;]*\mbirth_registry\M';
  c_guard   constant text := E'\n\n  IF EXISTS (SELECT 1 FROM birth_registry br\n'
                             || E'             WHERE br.entity_code = TG_TABLE_NAME || '':'' || v_id AND br.collection_name = TG_TABLE_NAME) THEN\n'
                             || E'    RETURN NULL;\n  END IF;';
BEGIN
  IF v_fn IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428', MESSAGE = 'step 5: public.fn_birth_registry_auto_id() does not exist';
  END IF;
  SELECT p.proowner, p.prosrc, p.prosecdef, p.proconfig, p.prorettype, l.lanname
    INTO v_p FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = v_fn;
  IF NOT (has_table_privilege(v_p.proowner, 'public.birth_registry', 'SELECT')
          AND has_table_privilege(v_p.proowner, 'public.birth_registry', 'INSERT')
          AND has_table_privilege(v_p.proowner, 'public.meta_catalog', 'SELECT')) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 5: the owner of fn_birth_registry_auto_id (%s) lacks SELECT+INSERT on birth_registry or SELECT on meta_catalog',
                       v_p.proowner::regrole),
      HINT = 'as SECURITY DEFINER the function births with its owner''s rights';
  END IF;

  v_def := pg_get_functiondef(v_fn);
  IF v_want <> '' AND v_want <> md5(v_def) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 5: fn_birth_registry_auto_id changed since the runner captured it (captured md5 %s, live %s); nothing changed', v_want, md5(v_def)),
      HINT = 'someone replaced the function during the run: re-run the apply to capture the body as it is now';
  END IF;
  IF v_expect <> '' AND v_expect <> md5(v_def) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 5: live md5(pg_get_functiondef(fn_birth_registry_auto_id)) is %s, the owner expects %s: not the body that was reviewed; nothing changed', md5(v_def), v_expect);
  END IF;
  IF v_p.lanname <> 'plpgsql' OR v_p.prorettype <> 'trigger'::regtype OR v_p.prosecdef OR v_p.proconfig IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 5: fn_birth_registry_auto_id is not the entry shape (a plpgsql trigger function, SECURITY INVOKER, no SET): language %s, returns %s, security definer %s, config %s; nothing changed',
                       v_p.lanname, v_p.prorettype::regtype, CASE WHEN v_p.prosecdef THEN 'yes' ELSE 'no' END,
                       coalesce(array_to_string(v_p.proconfig, '; '), 'none'));
  END IF;

  v_code := regexp_replace(v_p.prosrc, c_strip, '\1', 'g');
  -- {target in code, target in text, ON CONFLICT clauses, null-check anchor in code, in text, born code in code, in text}
  v_counts := ARRAY[regexp_count(v_code, c_target, 1, 'i'), regexp_count(v_p.prosrc, c_target, 1, 'i'), regexp_count(v_code, 'ON\s+CONFLICT', 1, 'i'),
                    regexp_count(v_code, c_null, 1, 'i'), regexp_count(v_p.prosrc, c_null, 1, 'i'),
                    regexp_count(v_code, c_born, 1, 'i'), regexp_count(v_p.prosrc, c_born, 1, 'i')];
  IF v_counts[1] <> 1 OR v_counts[2] <> 1 OR v_counts[3] <> 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 5: the anchor "ON CONFLICT (entity_code) DO NOTHING" must occur exactly once in fn_birth_registry_auto_id, in its code and nowhere else: found %s in the code, %s in the whole text (comments included), %s ON CONFLICT clause(s) in all; nothing changed',
                       v_counts[1], v_counts[2], v_counts[3]),
      HINT = 'the live body is not the shape this patch was reviewed against (KB-2590 §4): patch it by hand, or make the anchor unambiguous';
  END IF;
  IF v_counts[4] <> 1 OR v_counts[5] <> 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 5: the guard''s anchor "IF v_id IS NULL THEN RETURN NULL; END IF;" must occur exactly once in fn_birth_registry_auto_id, in its code and nowhere else: found %s in the code, %s in the whole text; nothing changed',
                       v_counts[4], v_counts[5]);
  END IF;
  IF v_counts[6] <> 1 OR v_counts[7] <> 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 5: fn_birth_registry_auto_id must birth the code TG_TABLE_NAME || '':'' || v_id (VALUES (TG_TABLE_NAME || '':'' || v_id, …) exactly once) for the guard to check that code: found %s in the code, %s in the whole text; nothing changed',
                       v_counts[6], v_counts[7]);
  END IF;
  IF v_code ~* c_exists THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = 'step 5: fn_birth_registry_auto_id already has an EXISTS guard over birth_registry: not the entry shape (KB-2590 §4), the patch would guard twice; nothing changed';
  END IF;

  -- The two edits, at their places in the text as found: the later one first, so the earlier
  -- position still holds.
  v_at := regexp_instr(v_p.prosrc, c_target, 1, 1, 0, 'i');
  v_end := regexp_instr(v_p.prosrc, c_target, 1, 1, 1, 'i');
  IF v_at < regexp_instr(v_p.prosrc, c_null, 1, 1, 1, 'i') THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428', MESSAGE = 'step 5: the conflict target comes before the IF v_id IS NULL anchor in fn_birth_registry_auto_id: not the entry shape; nothing changed';
  END IF;
  v_new := overlay(v_p.prosrc PLACING 'ON CONFLICT (entity_code, collection_name) DO NOTHING' FROM v_at FOR v_end - v_at);
  v_at := regexp_instr(v_new, c_null, 1, 1, 1, 'i');
  v_new := overlay(v_new PLACING c_guard FROM v_at FOR 0);

  -- pg_get_functiondef = header || 'AS ' || $function[x…]$ || prosrc || $function[x…]$ || newline. The
  -- header (every attribute as found) is kept; the two attributes the step adds go after it.
  v_q := '$function';
  WHILE strpos(v_p.prosrc, v_q) > 0 LOOP v_q := v_q || 'x'; END LOOP;
  v_tail := 'AS ' || v_q || '$' || v_p.prosrc || v_q || '$' || E'\n';
  IF right(v_def, length(v_tail)) IS DISTINCT FROM v_tail THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428', MESSAGE = 'step 5: pg_get_functiondef(fn_birth_registry_auto_id) does not end in its body as expected; nothing changed';
  END IF;
  v_q := '$function';
  WHILE strpos(v_new, v_q) > 0 LOOP v_q := v_q || 'x'; END LOOP;
  v_q := v_q || '$';
  EXECUTE left(v_def, length(v_def) - length(v_tail))
          || E' SECURITY DEFINER\n SET search_path = public, pg_temp\n'
          || 'AS ' || v_q || v_new || v_q;

  IF to_regprocedure('public.fn_birth_registry_auto_id()') IS DISTINCT FROM v_fn::regprocedure THEN
    RAISE EXCEPTION 'step 5: fn_birth_registry_auto_id changed its OID: its trigger bindings would be lost';
  END IF;
END
$$;

REVOKE EXECUTE ON FUNCTION fn_birth_registry_auto_id() FROM PUBLIC;

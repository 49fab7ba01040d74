-- KB-7D57 step 4: OID-stable body swap of fn_birth_registry_auto keeps the 166 trigger bindings
-- (CREATE OR REPLACE keeps the OID the triggers point at). The only body change is the conflict target:
-- ON CONFLICT (entity_code) → ON CONFLICT (entity_code, collection_name), so a code born in another
-- collection is no longer swallowed (KB-2590 §4, the 5-pivot mechanism). The EXISTS guard was already
-- composite. Until step 7 drops UNIQUE(entity_code), such an insert is refused loudly by that old
-- constraint (23505) instead of being lost silently; KB-2590 §3 found 0 such codes outside the pivots.
--
-- Issue 9 item 5: the new body is DERIVED from the live one, never a reconstruction of it. Production's
-- body is not sql/baseline's (its md5 is KB-2590 §4's 1f729b35…, not ours): installing our text would
-- replace production's function with the fixture's. So this file reads the live definition and makes
-- one checked edit: the single-column conflict target, which must occur exactly once in the code and
-- nowhere else in the text (a second occurrence, in a comment or a string, is ambiguous), and the
-- composite EXISTS guard it relies on must be there. Every other byte of the body (comments, layout,
-- other statements) and every header attribute stays as found. Anything else is refused with BG428
-- before a change: the function is not the shape this patch was reviewed against.
-- The runner captures the live definition in its ledger just before this file (packet/live-bodies.ts)
-- and tells it the captured md5 (birthgate.live_body_md5): the body edited here is the body captured,
-- or the step is refused. An owner who reviewed a body passes its md5 (birthgate.expect_md5, e.g.
-- KB-2590 §4's): another live body is refused. Both unset (the rehearsal, the files run by hand): the
-- live body is edited as found.
--
-- KB-7D57 step 4, least privilege: the swap also makes the function SECURITY DEFINER with a pinned
-- search_path, so a trigger-caused birth writes birth_registry with the owner's rights (directus,
-- the owner of birth_registry and meta_catalog; ownership is kept by CREATE OR REPLACE). The
-- admission worker then needs no INSERT on birth_registry and cannot write a birth that no permitted
-- insert caused (sql/roles/birthgate_worker.sql). Every other family whose triggers call this
-- function births exactly as before, only with the owner's rights instead of the inserting role's.
-- EXECUTE is taken from PUBLIC: CREATE TRIGGER needs it, so nobody but the owner (and superusers) can
-- bind this definer function to a table of their own (a temp table named like a family) and forge
-- births through it. Existing bindings keep firing (EXECUTE is checked when a trigger is created).
DO $$
DECLARE
  v_fn      oid := to_regprocedure('public.fn_birth_registry_auto()');
  v_p       record;
  v_def     text;
  v_code    text;
  v_new     text;
  v_tail    text;
  v_q       text;
  v_at      integer;
  v_end     integer;
  v_in_code integer;
  v_in_text integer;
  v_clauses integer;
  v_want    text := coalesce(current_setting('birthgate.live_body_md5', true), '');
  v_expect  text := coalesce(current_setting('birthgate.expect_md5', true), '');
  -- The code without its comments (string literals kept): the same expression as verify.sql.
  c_strip   constant text := $re$('([^']|'')*')|--[^\n]*|/\*([^*]|\*+[^*/])*\*+/$re$;
  c_target  constant text := 'ON\s+CONFLICT\s*\(\s*entity_code\s*\)\s*DO\s+NOTHING';
  c_guard   constant text := 'EXISTS\s*\(\s*SELECT\s+1\s+FROM\s+(public\.)?birth_registry(\s+(AS\s+)?\w+)?\s+WHERE\s+'
                             '(\w+\.)?entity_code\s*=\s*v_code\s+AND\s+(\w+\.)?collection_name\s*=\s*TG_TABLE_NAME\s*\)';
BEGIN
  IF v_fn IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428', MESSAGE = 'step 4: public.fn_birth_registry_auto() does not exist';
  END IF;
  SELECT p.proowner, p.prosrc, p.prosecdef, p.proconfig, p.prorettype, l.lanname
    INTO v_p FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = v_fn;
  -- (one privilege per call: a list would mean "any of them")
  IF NOT (has_table_privilege(v_p.proowner, 'public.birth_registry', 'SELECT')
          AND has_table_privilege(v_p.proowner, 'public.birth_registry', 'INSERT')
          AND has_table_privilege(v_p.proowner, 'public.meta_catalog', 'SELECT')) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 4: the owner of fn_birth_registry_auto (%s) lacks SELECT+INSERT on birth_registry or SELECT on meta_catalog',
                       v_p.proowner::regrole),
      HINT = 'as SECURITY DEFINER the function births with its owner''s rights';
  END IF;

  v_def := pg_get_functiondef(v_fn);
  IF v_want <> '' AND v_want <> md5(v_def) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 4: fn_birth_registry_auto changed since the runner captured it (captured md5 %s, live %s); nothing changed', v_want, md5(v_def)),
      HINT = 'someone replaced the function during the run: re-run the apply to capture the body as it is now';
  END IF;
  IF v_expect <> '' AND v_expect <> md5(v_def) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 4: live md5(pg_get_functiondef(fn_birth_registry_auto)) is %s, the owner expects %s: not the body that was reviewed; nothing changed', md5(v_def), v_expect);
  END IF;
  IF v_p.lanname <> 'plpgsql' OR v_p.prorettype <> 'trigger'::regtype OR v_p.prosecdef OR v_p.proconfig IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 4: fn_birth_registry_auto is not the entry shape (a plpgsql trigger function, SECURITY INVOKER, no SET): language %s, returns %s, security definer %s, config %s; nothing changed',
                       v_p.lanname, v_p.prorettype::regtype, CASE WHEN v_p.prosecdef THEN 'yes' ELSE 'no' END,
                       coalesce(array_to_string(v_p.proconfig, '; '), 'none'));
  END IF;

  v_code := regexp_replace(v_p.prosrc, c_strip, '\1', 'g');
  v_in_code := regexp_count(v_code, c_target, 1, 'i');
  v_in_text := regexp_count(v_p.prosrc, c_target, 1, 'i');
  v_clauses := regexp_count(v_code, 'ON\s+CONFLICT', 1, 'i');
  IF v_in_code <> 1 OR v_in_text <> 1 OR v_clauses <> 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 4: the anchor "ON CONFLICT (entity_code) DO NOTHING" must occur exactly once in fn_birth_registry_auto, in its code and nowhere else: found %s in the code, %s in the whole text (comments included), %s ON CONFLICT clause(s) in all; nothing changed',
                       v_in_code, v_in_text, v_clauses),
      HINT = 'the live body is not the shape this patch was reviewed against (KB-2590 §4): patch it by hand, or make the anchor unambiguous';
  END IF;
  IF regexp_count(v_code, c_guard, 1, 'i') <> 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = 'step 4: fn_birth_registry_auto has no composite EXISTS guard (EXISTS (SELECT 1 FROM birth_registry … WHERE entity_code = v_code AND collection_name = TG_TABLE_NAME)) or has it more than once: the patch relies on exactly one; nothing changed';
  END IF;

  -- The one edit, at the anchor's place in the text as found.
  v_at := regexp_instr(v_p.prosrc, c_target, 1, 1, 0, 'i');
  v_end := regexp_instr(v_p.prosrc, c_target, 1, 1, 1, 'i');
  v_new := overlay(v_p.prosrc PLACING 'ON CONFLICT (entity_code, collection_name) DO NOTHING' FROM v_at FOR v_end - v_at);

  -- pg_get_functiondef = header || 'AS ' || $function[x…]$ || prosrc || $function[x…]$ || newline. The
  -- header (every attribute as found) is kept; the two attributes the step adds go after it.
  v_q := '$function';
  WHILE strpos(v_p.prosrc, v_q) > 0 LOOP v_q := v_q || 'x'; END LOOP;
  v_tail := 'AS ' || v_q || '$' || v_p.prosrc || v_q || '$' || E'\n';
  IF right(v_def, length(v_tail)) IS DISTINCT FROM v_tail THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428', MESSAGE = 'step 4: pg_get_functiondef(fn_birth_registry_auto) does not end in its body as expected; nothing changed';
  END IF;
  v_q := '$function';
  WHILE strpos(v_new, v_q) > 0 LOOP v_q := v_q || 'x'; END LOOP;
  v_q := v_q || '$';
  EXECUTE left(v_def, length(v_def) - length(v_tail))
          || E' SECURITY DEFINER\n SET search_path = public, pg_temp\n'
          || 'AS ' || v_q || v_new || v_q;

  IF to_regprocedure('public.fn_birth_registry_auto()') IS DISTINCT FROM v_fn::regprocedure THEN
    RAISE EXCEPTION 'step 4: fn_birth_registry_auto changed its OID: the 166 trigger bindings would be lost';
  END IF;
END
$$;

REVOKE EXECUTE ON FUNCTION fn_birth_registry_auto() FROM PUBLIC;

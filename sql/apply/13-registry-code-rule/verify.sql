-- Step 13 holds: what its up.sql installed is in the catalog — meta_catalog.code_pattern, the family rule
-- fn_family_code_rule and the coverage function and view (birthgate_owner's), the permit gate's precheck
-- calling the rule, and check (3) of fn_pre_birth_check reading the registry.
-- Catalog only, never the estate's rows (packet/README.md "What a verify.sql checks"): a break-glass
-- admission births a code the rule refuses on purpose (birth_break_glass), and when this verify asked
-- the coverage whether every dot_tools code fits the rule, one such birth made the step read "not
-- applied" — a hole at the next apply, 42701 in the rehearsal, its down skipped by a rollback. Whether
-- the rule fits the family's rows is v_birth_code_rule_coverage's STOP, for an operator to read; it
-- also scans every code-keyed family, too much for a check the runner makes before every step.
WITH c AS (
  SELECT
    EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = to_regclass('public.meta_catalog') AND a.attname = 'code_pattern' AND NOT a.attisdropped) AS has_column,
    coalesce((SELECT pg_catalog.pg_get_userbyid(p.proowner) = 'birthgate_owner' FROM pg_catalog.pg_proc p
               WHERE p.oid = to_regprocedure('public.fn_family_code_rule(text,text)')), false) AS has_rule,
    coalesce((SELECT pg_catalog.pg_get_userbyid(p.proowner) = 'birthgate_owner' FROM pg_catalog.pg_proc p
               WHERE p.oid = to_regprocedure('public.fn_birth_code_rule_coverage()')), false) AS has_coverage,
    to_regclass('public.v_birth_code_rule_coverage') IS NOT NULL AS has_view,
    -- The gate's precheck enforces the rule (step 13's body; step 15's adds the break-glass exemption).
    coalesce(pg_catalog.pg_get_functiondef(to_regprocedure('public.fn_admission_precheck(text,text,bigint)'))
               LIKE '%public.fn_family_code_rule(p_collection_name, p_entity_code)%', false) AS gate_enforces,
    coalesce(pg_catalog.pg_get_functiondef(to_regprocedure('public.fn_pre_birth_check(text,text,text,text)'))
               LIKE '%code_pattern%', false) AS check3_registry
)
SELECT (has_column AND has_rule AND has_coverage AND has_view AND gate_enforces AND check3_registry) AS ok,
       format('meta_catalog.code_pattern=%s fn_family_code_rule=%s fn_birth_code_rule_coverage=%s v_birth_code_rule_coverage=%s gate enforces the rule=%s fn_pre_birth_check registry-driven=%s',
              has_column, has_rule, has_coverage, has_view, gate_enforces, check3_registry) AS detail
  FROM c;

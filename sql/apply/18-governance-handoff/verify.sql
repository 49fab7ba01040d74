-- Step 18 holds: the handoff's entry point exists as a SECURITY DEFINER function of birthgate_owner,
-- and its cursor has a row for each of the two tails (counted through query_to_xml: the table may be
-- absent, and a missing relation must read as "not applied", not fail the statement).
WITH s AS (
  SELECT to_regprocedure('public.fn_governance_handoff_batch(text,integer,text)') AS fn,
         to_regclass('public.birth_handoff_cursor') AS cursor_table,
         to_regclass('public.birth_handoff_gap') AS gap_table,
         to_regclass('public.birth_handoff_batch') AS batch_table
), c AS (
  SELECT s.*,
         (SELECT pg_catalog.pg_get_userbyid(p.proowner) = 'birthgate_owner' AND p.prosecdef FROM pg_catalog.pg_proc p WHERE p.oid = s.fn) AS definer,
         CASE WHEN s.cursor_table IS NULL THEN 0 ELSE
           (xpath('/row/n/text()', query_to_xml('SELECT count(*) AS n FROM public.birth_handoff_cursor', false, true, '')))[1]::text::integer
         END AS cursors
    FROM s
)
SELECT (c.fn IS NOT NULL AND coalesce(c.definer, false) AND c.gap_table IS NOT NULL AND c.batch_table IS NOT NULL AND c.cursors = 2) AS ok,
       format('fn_governance_handoff_batch=%s definer=%s cursor rows=%s gaps=%s history=%s', c.fn IS NOT NULL,
              coalesce(c.definer, false), c.cursors, c.gap_table IS NOT NULL, c.batch_table IS NOT NULL) AS detail
  FROM c;

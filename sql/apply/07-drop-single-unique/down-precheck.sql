-- KB-7D57 step 7 down-precheck (issue 7 item 7): can UNIQUE(entity_code) be restored? Not once any
-- code is born in more than one collection (KB-3A66 §5: the one-way door is closed by use) — the
-- condition down.sql refuses on with BG428. The runner runs this before the FIRST down of a
-- rollback, so a refused `rollback --to N` changes nothing instead of stopping half way.
-- Read-only, one row (ok, detail), like verify.sql.
-- birthgate.rollback_steps (transaction-local, set by the runner) lists the steps whose downs the
-- rollback will run. When step 8 is among them, its down runs before this one and deletes exactly
-- the five pivot births in pivot_definitions (08-birth-pivots/down.sql), so those are not counted.
-- Unset or empty (a step rolled back on its own, or by hand): the state is judged as it is now.
WITH plan AS (
  SELECT coalesce(8 = ANY (string_to_array(nullif(current_setting('birthgate.rollback_steps', true), ''), ',')::integer[]),
                  false) AS step8_down_first
), births AS (
  SELECT b.entity_code
    FROM public.birth_registry b, plan
   WHERE NOT (plan.step8_down_first
              AND b.collection_name = 'pivot_definitions'
              AND b.entity_code IN ('PIV-101', 'PIV-103', 'PIV-104', 'PIV-105', 'PIV-106'))
), dup AS (
  SELECT entity_code, row_number() OVER (ORDER BY entity_code) AS rn
    FROM births GROUP BY entity_code HAVING count(*) > 1
)
SELECT count(*) = 0 AS ok,
       CASE WHEN count(*) = 0
            THEN 'no entity_code is born in more than one collection: UNIQUE(entity_code) can be restored'
            ELSE format('cannot roll back step 7: %s entity_code(s) are born in more than one collection (%s%s)',
                        count(*), string_agg(entity_code, ', ' ORDER BY entity_code) FILTER (WHERE rn <= 10),
                        CASE WHEN count(*) > 10 THEN ', …' ELSE '' END)
       END AS detail
  FROM dup;

-- KB-7D57 step 7 rollback, part 2 of 2: "ADD CONSTRAINT … UNIQUE (entity_code) — fails if any
-- cross-collection code already born". Part 1 (down-concurrently.sql, meta.json "downConcurrently")
-- built the unique index online, outside a transaction; this transaction only promotes it:
-- ADD CONSTRAINT … UNIQUE USING INDEX holds ACCESS EXCLUSIVE for the catalog update alone, never for
-- an index build. The result is the entry state (sql/baseline/10-birth-registry.sql): constraint
-- UNIQUE (entity_code) on the index of the same name.
-- The cross-collection check stays here as well as in down-precheck.sql, so the file refuses on its
-- own (BG428, naming the codes), whoever runs it; it runs before the ALTER, under ACCESS SHARE only.
DO $$
DECLARE
  v_codes text;
  v_n bigint;
  v_def text;
  v_valid boolean;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_constraint
              WHERE conrelid = 'public.birth_registry'::regclass
                AND conname = 'birth_registry_entity_code_unique') THEN
    RETURN;  -- already rolled back
  END IF;

  SELECT count(*), string_agg(entity_code, ', ' ORDER BY entity_code) FILTER (WHERE rn <= 10)
    INTO v_n, v_codes
    FROM (SELECT entity_code, row_number() OVER (ORDER BY entity_code) AS rn
            FROM public.birth_registry GROUP BY entity_code HAVING count(*) > 1) d;
  IF v_n > 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('cannot roll back step 7: %s entity_code(s) are born in more than one collection (%s%s)',
                       v_n, v_codes, CASE WHEN v_n > 10 THEN ', …' ELSE '' END),
      DETAIL = 'UNIQUE(entity_code) cannot be restored once a code is born in a second collection (KB-3A66 §5 one-way door)',
      HINT = 'roll back step 8 (the pivot births) first, or retire the second-collection births';
  END IF;

  -- The index part 1 built: present, VALID and exactly the entry definition, else nothing is promoted.
  SELECT pg_get_indexdef(i.indexrelid), i.indisvalid
    INTO v_def, v_valid
    FROM pg_index i
   WHERE i.indexrelid = to_regclass('public.birth_registry_entity_code_unique');
  IF v_def IS DISTINCT FROM 'CREATE UNIQUE INDEX birth_registry_entity_code_unique ON public.birth_registry USING btree (entity_code)'
     OR NOT coalesce(v_valid, false) THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = format('cannot roll back step 7: index birth_registry_entity_code_unique is %s',
                       CASE WHEN v_def IS NULL THEN 'missing'
                            WHEN NOT v_valid THEN 'INVALID'
                            ELSE 'not the entry definition: ' || v_def END),
      HINT = 'run this step''s down-concurrently.sql first, outside a transaction (the packet runner does)';
  END IF;

  ALTER TABLE public.birth_registry
    ADD CONSTRAINT birth_registry_entity_code_unique UNIQUE USING INDEX birth_registry_entity_code_unique;
END;
$$;

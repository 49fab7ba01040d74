-- KB-7D57 step 7 rollback: "ADD CONSTRAINT … UNIQUE (entity_code) — fails if any cross-collection
-- code already born". Checked first so the refusal is a clear BG428 naming the codes instead of a
-- bare 23505 from the index build; the unique_violation handler covers a birth that lands between
-- the check and the ALTER.
DO $$
DECLARE
  v_codes text;
  v_n bigint;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_constraint
              WHERE conrelid = 'public.birth_registry'::regclass
                AND conname = 'birth_registry_entity_code_unique') THEN
    RETURN;  -- already rolled back
  END IF;

  SELECT count(*), string_agg(entity_code, ', ' ORDER BY entity_code) FILTER (WHERE rn <= 10)
    INTO v_n, v_codes
    FROM (SELECT entity_code, row_number() OVER (ORDER BY entity_code) AS rn
            FROM birth_registry GROUP BY entity_code HAVING count(*) > 1) d;
  IF v_n > 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('cannot roll back step 7: %s entity_code(s) are born in more than one collection (%s%s)',
                       v_n, v_codes, CASE WHEN v_n > 10 THEN ', …' ELSE '' END),
      DETAIL = 'UNIQUE(entity_code) cannot be restored once a code is born in a second collection (KB-3A66 §5 one-way door)',
      HINT = 'roll back step 8 (the pivot births) first, or retire the second-collection births';
  END IF;

  BEGIN
    ALTER TABLE birth_registry ADD CONSTRAINT birth_registry_entity_code_unique UNIQUE (entity_code);
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = 'cannot roll back step 7: a code was born in a second collection while restoring UNIQUE(entity_code)';
  END;
END;
$$;

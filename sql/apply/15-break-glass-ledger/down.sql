-- Rollback of step 15: the step-13 precheck body, the ledger and its function, this step's baseline set.
-- Permits keep their break_glass flag and id (history); the ledger rows go with the table.
DELETE FROM birth_drift_baseline WHERE baseline_set = 'step-15';

CREATE OR REPLACE FUNCTION fn_admission_precheck(p_collection_name text, p_entity_code text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = public, pg_temp
AS $$
BEGIN
  IF p_entity_code IS NULL OR btrim(p_entity_code) = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('%s insert refused: the row has no code, so no birth permit can match it', p_collection_name);
  END IF;
  IF NOT fn_family_code_rule(p_collection_name, p_entity_code) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('%s insert of %s refused: the code does not match the family code rule %s', p_collection_name,
                       left(p_entity_code, 80),
                       coalesce((SELECT mc.code_pattern FROM meta_catalog mc WHERE mc.collection_name = p_collection_name),
                                '^[A-Z]+-[0-9]+$')),
      HINT = 'meta_catalog.code_pattern holds the rule; an operator break-glass admits an exception';
  END IF;
END;
$$;

DROP FUNCTION IF EXISTS fn_break_glass_open(text, text, text, text, text, bigint, text);
DROP TABLE IF EXISTS birth_break_glass;

-- KB-7D57 step 4: OID-stable body swap of fn_birth_registry_auto keeps the 166 trigger bindings
-- (CREATE OR REPLACE keeps the OID the triggers point at). The only change is the conflict target:
-- ON CONFLICT (entity_code) → ON CONFLICT (entity_code, collection_name), so a code born in another
-- collection is no longer swallowed (KB-2590 §4, the 5-pivot mechanism). The EXISTS guard was already
-- composite. Until step 7 drops UNIQUE(entity_code), such an insert is refused loudly by that old
-- constraint (23505) instead of being lost silently; KB-2590 §3 found 0 such codes outside the pivots.
CREATE OR REPLACE FUNCTION fn_birth_registry_auto() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  v_row     jsonb := to_jsonb(NEW);
  v_code    text := v_row ->> coalesce(TG_ARGV[0], 'code');
  v_species text;
  v_level   text;
  v_role    text;
  v_id_fld  text;
  v_nm_fld  text;
BEGIN
  IF v_code IS NULL OR btrim(v_code) = '' THEN
    RETURN NULL;
  END IF;

  IF EXISTS (SELECT 1 FROM birth_registry br
             WHERE br.entity_code = v_code AND br.collection_name = TG_TABLE_NAME) THEN
    RETURN NULL;
  END IF;

  SELECT mc.default_species, mc.composition_level, mc.governance_role, mc.id_field, mc.name_field
    INTO v_species, v_level, v_role, v_id_fld, v_nm_fld
    FROM meta_catalog mc WHERE mc.collection_name = TG_TABLE_NAME;

  INSERT INTO birth_registry (entity_code, collection_name, species_code, composition_level, governance_role,
                              dot_origin, entity_id, entity_name, birth_method, birth_trigger, jsonb_profile)
  VALUES (v_code, TG_TABLE_NAME, coalesce(v_row ->> 'species_code', v_species), v_level, v_role,
          v_row ->> '_dot_origin', (v_row ->> coalesce(v_id_fld, 'id'))::bigint,
          v_row ->> coalesce(v_nm_fld, 'name'), 'trigger', TG_NAME,
          jsonb_build_object('op', TG_OP, 'table', TG_TABLE_NAME))
  ON CONFLICT (entity_code, collection_name) DO NOTHING;

  RETURN NULL;
END
$fn$;

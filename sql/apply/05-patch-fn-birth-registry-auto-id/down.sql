-- KB-7D57 step 5 rollback: "restore entry body" — byte for byte the entry text
-- (sql/baseline/11-fn-birth-registry-auto.sql), so md5(pg_get_functiondef) is the entry md5 again
-- (KB-2590 §4: 3f3515de… on prod). Unnamed attributes take their defaults, so SECURITY INVOKER and
-- no SET search_path come back with it; EXECUTE goes back to PUBLIC, as at entry (see step 4's down).
CREATE OR REPLACE FUNCTION fn_birth_registry_auto_id() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  v_row     jsonb := to_jsonb(NEW);
  v_id      text := v_row ->> coalesce(TG_ARGV[0], 'id');
  v_species text;
  v_level   text;
  v_role    text;
BEGIN
  IF v_id IS NULL THEN
    RETURN NULL;
  END IF;

  SELECT mc.default_species, mc.composition_level, mc.governance_role
    INTO v_species, v_level, v_role
    FROM meta_catalog mc WHERE mc.collection_name = TG_TABLE_NAME;

  INSERT INTO birth_registry (entity_code, collection_name, species_code, composition_level, governance_role,
                              dot_origin, entity_id, birth_method, birth_trigger, jsonb_profile)
  VALUES (TG_TABLE_NAME || ':' || v_id, TG_TABLE_NAME, v_species, v_level, v_role,
          v_row ->> '_dot_origin', v_id::bigint, 'trigger', TG_NAME,
          jsonb_build_object('op', TG_OP, 'table', TG_TABLE_NAME, 'keyed_by', 'id'))
  ON CONFLICT (entity_code) DO NOTHING;

  RETURN NULL;
END
$fn$;

GRANT EXECUTE ON FUNCTION fn_birth_registry_auto_id() TO PUBLIC;

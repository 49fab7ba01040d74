-- KB-7D57 step 4 rollback: "CREATE OR REPLACE back to entry body" — the entry text byte for byte
-- (sql/baseline/11-fn-birth-registry-auto.sql), so md5(pg_get_functiondef) is the entry md5 again
-- (KB-2590 §4: 1f729b35… on prod) and the OID never changed. CREATE OR REPLACE assigns every attribute
-- it does not name its default, so the entry attributes come back too: SECURITY INVOKER, no SET
-- search_path (owner and OID stay). EXECUTE goes back to PUBLIC, as at entry (the entry ACL is the
-- default one; after this GRANT it is spelled out, with the same meaning).
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
  ON CONFLICT (entity_code) DO NOTHING;

  RETURN NULL;
END
$fn$;

GRANT EXECUTE ON FUNCTION fn_birth_registry_auto() TO PUBLIC;

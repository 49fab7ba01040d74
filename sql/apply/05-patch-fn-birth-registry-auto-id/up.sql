-- KB-7D57 step 5: OID-stable body swap of fn_birth_registry_auto_id: conflict target
-- (entity_code, collection_name) and the composite EXISTS guard its sibling already had, so an
-- id-keyed row is born once in its own collection. Bindings keep pointing at the same OID.
--
-- Least privilege, as in step 4 (see its up.sql): SECURITY DEFINER with a pinned search_path, so the
-- id-keyed families (pivot_results, …) birth with the owner's rights instead of the inserting role's,
-- exactly as before otherwise; EXECUTE is taken from PUBLIC so no one else can bind it to a table.
DO $$
DECLARE
  v_owner oid;
BEGIN
  SELECT p.proowner INTO v_owner FROM pg_proc p
   WHERE p.oid = to_regprocedure('public.fn_birth_registry_auto_id()');
  IF v_owner IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428', MESSAGE = 'step 5: public.fn_birth_registry_auto_id() does not exist';
  END IF;
  IF NOT (has_table_privilege(v_owner, 'public.birth_registry', 'SELECT')
          AND has_table_privilege(v_owner, 'public.birth_registry', 'INSERT')
          AND has_table_privilege(v_owner, 'public.meta_catalog', 'SELECT')) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 5: the owner of fn_birth_registry_auto_id (%s) lacks SELECT+INSERT on birth_registry or SELECT on meta_catalog',
                       v_owner::regrole),
      HINT = 'as SECURITY DEFINER the function births with its owner''s rights';
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION fn_birth_registry_auto_id() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
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

  IF EXISTS (SELECT 1 FROM birth_registry br
             WHERE br.entity_code = TG_TABLE_NAME || ':' || v_id AND br.collection_name = TG_TABLE_NAME) THEN
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
  ON CONFLICT (entity_code, collection_name) DO NOTHING;

  RETURN NULL;
END
$fn$;

REVOKE EXECUTE ON FUNCTION fn_birth_registry_auto_id() FROM PUBLIC;

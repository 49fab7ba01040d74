-- KB-7D57 step 4: OID-stable body swap of fn_birth_registry_auto keeps the 166 trigger bindings
-- (CREATE OR REPLACE keeps the OID the triggers point at). The only body change is the conflict target:
-- ON CONFLICT (entity_code) → ON CONFLICT (entity_code, collection_name), so a code born in another
-- collection is no longer swallowed (KB-2590 §4, the 5-pivot mechanism). The EXISTS guard was already
-- composite. Until step 7 drops UNIQUE(entity_code), such an insert is refused loudly by that old
-- constraint (23505) instead of being lost silently; KB-2590 §3 found 0 such codes outside the pivots.
--
-- KB-7D57 step 4, least privilege: the swap also makes the function SECURITY DEFINER with a pinned
-- search_path, so a trigger-caused birth writes birth_registry with the owner's rights (directus,
-- the owner of birth_registry and meta_catalog; ownership is kept by CREATE OR REPLACE). The
-- admission worker then needs no INSERT on birth_registry and cannot write a birth that no permitted
-- insert caused (sql/roles/birthgate_worker.sql). Every other family whose triggers call this
-- function births exactly as before, only with the owner's rights instead of the inserting role's.
-- EXECUTE is taken from PUBLIC: CREATE TRIGGER needs it, so nobody but the owner (and superusers) can
-- bind this definer function to a table of their own (a temp table named like a family) and forge
-- births through it. Existing bindings keep firing (EXECUTE is checked when a trigger is created).
DO $$
DECLARE
  v_owner oid;
BEGIN
  SELECT p.proowner INTO v_owner FROM pg_proc p
   WHERE p.oid = to_regprocedure('public.fn_birth_registry_auto()');
  IF v_owner IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428', MESSAGE = 'step 4: public.fn_birth_registry_auto() does not exist';
  END IF;
  -- (one privilege per call: a list would mean "any of them")
  IF NOT (has_table_privilege(v_owner, 'public.birth_registry', 'SELECT')
          AND has_table_privilege(v_owner, 'public.birth_registry', 'INSERT')
          AND has_table_privilege(v_owner, 'public.meta_catalog', 'SELECT')) THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 4: the owner of fn_birth_registry_auto (%s) lacks SELECT+INSERT on birth_registry or SELECT on meta_catalog',
                       v_owner::regrole),
      HINT = 'as SECURITY DEFINER the function births with its owner''s rights';
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION fn_birth_registry_auto() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
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

REVOKE EXECUTE ON FUNCTION fn_birth_registry_auto() FROM PUBLIC;

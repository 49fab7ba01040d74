-- KB-7D57 step 4 rollback: "CREATE OR REPLACE back to entry body" on the same OID (the 166 bindings
-- keep pointing at it).
--
-- Issue 9 item 5: the entry body is the one the runner captured in its ledger just before the up
-- (birthgate_ledger.live_body, packet/live-bodies.ts), handed to this transaction as
-- birthgate.live_body_def / _md5 / _oid / _acl. That definition (pg_get_functiondef's own text, every
-- attribute in it: SECURITY INVOKER, no SET) is executed as captured, and must come back with the
-- captured md5 on the captured OID, else nothing changes; then the captured ACL comes back (the
-- fingerprint compares ACLs by meaning: a default ACL and the same grants spelled out are equal).
--
-- Without a capture (the files run by hand, a step applied before the runner captured bodies) the
-- down falls back to the project's reconstruction of the entry text, byte for byte
-- (sql/baseline/11-fn-birth-registry-auto.sql): the fixture's entry md5, which on production is NOT
-- KB-2590 §4's 1f729b35… — the runner says so in the step's detail. EXECUTE goes back to PUBLIC, as
-- at the fixture's entry.
DO $down$
DECLARE
  v_fn    oid := to_regprocedure('public.fn_birth_registry_auto()');
  v_def   text := coalesce(current_setting('birthgate.live_body_def', true), '');
  v_md5   text := coalesce(current_setting('birthgate.live_body_md5', true), '');
  v_oid   text := coalesce(current_setting('birthgate.live_body_oid', true), '');
  v_acl   text := coalesce(current_setting('birthgate.live_body_acl', true), '');
  v_owner oid;
  v_want  aclitem[];
  r       record;
BEGIN
  IF v_fn IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428', MESSAGE = 'step 4 rollback: public.fn_birth_registry_auto() does not exist';
  END IF;

  IF v_def = '' THEN
    EXECUTE $entry$
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
$fn$
$entry$;
    GRANT EXECUTE ON FUNCTION public.fn_birth_registry_auto() TO PUBLIC;
    RETURN;
  END IF;

  IF v_oid <> v_fn::text THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('step 4 rollback: the captured body belongs to OID %s, fn_birth_registry_auto is now OID %s (dropped and re-created?): restore it by hand from birthgate_ledger.live_body', v_oid, v_fn);
  END IF;
  IF v_def !~ '^CREATE OR REPLACE FUNCTION public\.fn_birth_registry_auto\(\)\n' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428', MESSAGE = 'step 4 rollback: the captured definition is not one of public.fn_birth_registry_auto()';
  END IF;
  EXECUTE v_def;
  IF md5(pg_get_functiondef(v_fn)) <> v_md5 THEN
    RAISE EXCEPTION 'step 4 rollback: the captured definition came back with md5 %, not the captured %', md5(pg_get_functiondef(v_fn)), v_md5;
  END IF;

  -- The captured ACL (NULL: the default one, PUBLIC included), grantee by grantee.
  SELECT p.proowner INTO v_owner FROM pg_proc p WHERE p.oid = v_fn;
  v_want := coalesce(nullif(v_acl, '')::aclitem[], acldefault('f', v_owner));
  FOR r IN SELECT x.grantee, x.is_grantable FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x
            WHERE p.oid = v_fn AND x.privilege_type = 'EXECUTE'
           EXCEPT SELECT y.grantee, y.is_grantable FROM aclexplode(v_want) y WHERE y.privilege_type = 'EXECUTE'
  LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION public.fn_birth_registry_auto() FROM %s CASCADE',
                   CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.grantee)) END);
  END LOOP;
  FOR r IN SELECT y.grantee, y.is_grantable FROM aclexplode(v_want) y WHERE y.privilege_type = 'EXECUTE'
           EXCEPT SELECT x.grantee, x.is_grantable FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x
            WHERE p.oid = v_fn AND x.privilege_type = 'EXECUTE'
  LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION public.fn_birth_registry_auto() TO %s%s',
                   CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.grantee)) END,
                   CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
END
$down$;

-- KB-7D57 step 8: birth the 5 pivot collisions PIV-101/103/104/105/106 in pivot_definitions, as a
-- separate reversible DML step after the constraint swap (KB-3A66 §5). Their codes are born in
-- another collection, so the entry conflict target swallowed their births (KB-2590 §4); with the
-- composite they are born in their own collection. The row mirrors what fn_birth_registry_auto
-- writes (meta_catalog defaults), marked as born by the packet rather than by a trigger. Only rows
-- that exist in pivot_definitions and are not yet born there are touched (idempotent).
-- SECURITY.md: an estate table is written as its owner, so triggers the owner put on it never run
-- with the applying superuser's rights.
SELECT set_config('role', pg_catalog.pg_get_userbyid(c.relowner)::text, true) FROM pg_catalog.pg_class c
 WHERE c.oid = 'public.birth_registry'::regclass;
INSERT INTO birth_registry (entity_code, collection_name, species_code, composition_level, governance_role,
                            dot_origin, entity_id, entity_name, birth_method, birth_trigger, jsonb_profile)
SELECT p.code, 'pivot_definitions', mc.default_species, mc.composition_level, mc.governance_role,
       NULL,  -- pivot_definitions has no _dot_origin column (KB-4410 §C)
       p.id, p.name, 'apply-packet', 'KB-7D57 step 8',
       jsonb_build_object('op', 'BIRTH', 'table', 'pivot_definitions', 'reason', 'pivot collision repair (KB-7D57 step 8)')
  FROM pivot_definitions p
  LEFT JOIN meta_catalog mc ON mc.collection_name = 'pivot_definitions'
 WHERE p.code IN ('PIV-101', 'PIV-103', 'PIV-104', 'PIV-105', 'PIV-106')
ON CONFLICT (entity_code, collection_name) DO NOTHING;
RESET ROLE;

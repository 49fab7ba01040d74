-- KB-7D57 step 8 rollback: "DELETE FROM birth_registry WHERE entity_code IN (…) AND
-- collection_name='pivot_definitions'" — exactly the 5 pivot births, nothing in other collections.
-- Written as the table's owner, so triggers the owner put on it never run with the superuser's rights.
SELECT set_config('role', pg_catalog.pg_get_userbyid(c.relowner)::text, true) FROM pg_catalog.pg_class c
 WHERE c.oid = 'public.birth_registry'::regclass;
DELETE FROM birth_registry
 WHERE entity_code IN ('PIV-101', 'PIV-103', 'PIV-104', 'PIV-105', 'PIV-106')
   AND collection_name = 'pivot_definitions';
RESET ROLE;

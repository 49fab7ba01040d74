-- KB-7D57 step 11 rollback: "unset flag" — the entry state has no such row (dot_config is empty as
-- found). The worker loses INSERT and DELETE on dot_tools in the same transaction: an unflagged
-- family is not gated, so the worker must not insert into it.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_worker') THEN
    REVOKE INSERT, DELETE ON public.dot_tools FROM birthgate_worker;
  END IF;
END
$$;
DELETE FROM public.birth_admission_family WHERE collection_name = 'dot_tools';
SELECT set_config('role', pg_catalog.pg_get_userbyid(c.relowner)::text, true) FROM pg_catalog.pg_class c
 WHERE c.oid = 'public.dot_config'::regclass;  -- written as its owner (SECURITY.md)
DELETE FROM public.dot_config WHERE collection_name = 'dot_tools' AND config_key = 'birth_admission_required';
RESET ROLE;
DROP TABLE IF EXISTS public.birth_admission_entry;
DROP FUNCTION IF EXISTS public.fn_admission_entry_immutable();

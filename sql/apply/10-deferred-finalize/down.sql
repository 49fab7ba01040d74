-- KB-7D57 step 10 rollback: "DROP TRIGGER … ; DROP FUNCTION …". The worker loses INSERT and DELETE on
-- dot_tools in the same transaction: without the finalize, an insert would commit unfinalized.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_worker') THEN
    REVOKE INSERT, DELETE ON public.dot_tools FROM birthgate_worker;
  END IF;
END
$$;
DROP EVENT TRIGGER IF EXISTS trg_birthgate_protect_estate;
DROP FUNCTION IF EXISTS public.fn_admission_protect_estate();
DROP FUNCTION IF EXISTS public.fn_admission_insert_dot_tools(bigint, jsonb);
DROP FUNCTION IF EXISTS public.fn_admission_insert_permit(bigint);
DROP TRIGGER IF EXISTS trg_dt_finalize ON public.dot_tools;
DROP FUNCTION IF EXISTS public.fn_dt_finalize();
DROP FUNCTION IF EXISTS public.fn_admission_estate_write_check();

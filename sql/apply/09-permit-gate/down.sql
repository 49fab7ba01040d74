-- KB-7D57 step 9 rollback: "DROP TRIGGER … ; DROP FUNCTION …". The worker loses INSERT and DELETE on
-- dot_tools in the same transaction: without the gate, its insert would be an ungated birth.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'birthgate_worker') THEN
    REVOKE INSERT, DELETE ON public.dot_tools FROM birthgate_worker;
  END IF;
END
$$;
DROP TRIGGER IF EXISTS trg_permit_guard_truncate_dot_tools ON public.dot_tools;
DROP TRIGGER IF EXISTS trg_permit_guard_delete_dot_tools ON public.dot_tools;
DROP TRIGGER IF EXISTS trg_permit_guard_dot_tools ON public.dot_tools;
DROP TRIGGER IF EXISTS trg_dt_consume ON public.dot_tools;
DROP TRIGGER IF EXISTS trg_permit_gate_dot_tools ON public.dot_tools;
DROP FUNCTION IF EXISTS public.fn_dot_tools_row_guard();
DROP FUNCTION IF EXISTS public.fn_dot_tools_permit_consume();
DROP FUNCTION IF EXISTS public.fn_dot_tools_permit_gate();
DROP FUNCTION IF EXISTS public.fn_admission_refusal(text, text);
DROP FUNCTION IF EXISTS public.fn_admission_precheck(text, text, bigint);
DROP FUNCTION IF EXISTS public.fn_family_flag(text, text);
DO $$
DECLARE
  v_fn regprocedure;
BEGIN
  IF to_regclass('public.birth_admission_pinned') IS NOT NULL THEN
    FOR v_fn IN SELECT p.fn FROM public.birth_admission_pinned p LOOP
      EXECUTE format('ALTER FUNCTION %s RESET search_path', v_fn);
    END LOOP;
  END IF;
END
$$;
DROP TABLE IF EXISTS public.birth_admission_pinned;
DROP TABLE IF EXISTS public.birth_admission_guard;
DROP TABLE IF EXISTS public.birth_admission_family;

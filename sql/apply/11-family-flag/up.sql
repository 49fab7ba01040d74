-- KB-7D57 step 11: the family flag birth_admission_required = true for dot_tools only (KB-4410 §F:
-- one family, never a global flip). From this commit on the gate of step 9 enforces.
--
-- The gate reads the flag from birthgate_owner's birth_admission_family (step 9): the estate owner
-- cannot delete it or set it to a non-boolean. The dot_config row KB-7D57 names is written too, as the
-- estate's mirror; the drift watch reports any difference between the two.
INSERT INTO public.birth_admission_family (collection_name, required, cutoff_at, updated_by)
VALUES ('dot_tools', true, clock_timestamp(), 'KB-7D57 step 11')
ON CONFLICT (collection_name)
DO UPDATE SET required = true, cutoff_at = coalesce(public.birth_admission_family.cutoff_at, EXCLUDED.cutoff_at),
              updated_at = clock_timestamp(), updated_by = EXCLUDED.updated_by;

-- SECURITY.md: an estate table is written as its owner, so triggers the owner put on it never run
-- with the applying superuser's rights.
SELECT set_config('role', pg_catalog.pg_get_userbyid(c.relowner)::text, true) FROM pg_catalog.pg_class c
 WHERE c.oid = 'public.dot_config'::regclass;
INSERT INTO public.dot_config (collection_name, config_key, config_value, updated_by)
VALUES ('dot_tools', 'birth_admission_required', 'true'::jsonb, 'KB-7D57 step 11')
ON CONFLICT (collection_name, config_key)
DO UPDATE SET config_value = EXCLUDED.config_value, updated_at = now(), updated_by = EXCLUDED.updated_by;
RESET ROLE;

-- The data-level invariants of the drift watch (step 16) start here: every row and birth of the family
-- that exists now is recorded; from this commit on, any other row must carry a FINALIZED permit for
-- its id and code, and any other birth must be linked by one. A superuser who disables the gate,
-- inserts and re-enables it in one transaction leaves exactly such a row behind.
CREATE TABLE public.birth_admission_entry (
  collection_name text NOT NULL,
  kind            text NOT NULL CHECK (kind IN ('row', 'birth')),
  id              bigint NOT NULL,
  entity_code     text,
  CONSTRAINT birth_admission_entry_pkey PRIMARY KEY (collection_name, kind, id)
);
INSERT INTO public.birth_admission_entry (collection_name, kind, id, entity_code)
SELECT 'dot_tools', 'row', d.id, d.code::text FROM public.dot_tools d
UNION ALL
SELECT 'dot_tools', 'birth', b.id, b.entity_code::text FROM public.birth_registry b WHERE b.collection_name = 'dot_tools';
REVOKE ALL ON TABLE public.birth_admission_entry FROM PUBLIC;
ALTER TABLE public.birth_admission_entry OWNER TO birthgate_owner;

-- The entry state is a record, not a whitelist: once written it never changes (a superuser must disable
-- this first, which the DDL ledger and the trigger-set fingerprint show).
CREATE FUNCTION public.fn_admission_entry_immutable()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'BG403', MESSAGE = format('%s is immutable: %s refused', TG_TABLE_NAME, TG_OP);
END;
$$;
REVOKE ALL ON FUNCTION public.fn_admission_entry_immutable() FROM PUBLIC;
ALTER FUNCTION public.fn_admission_entry_immutable() OWNER TO birthgate_owner;
CREATE TRIGGER trg_admission_entry_immutable BEFORE INSERT OR UPDATE OR DELETE ON public.birth_admission_entry
  FOR EACH ROW EXECUTE FUNCTION public.fn_admission_entry_immutable();
CREATE TRIGGER trg_admission_entry_no_truncate BEFORE TRUNCATE ON public.birth_admission_entry
  FOR EACH STATEMENT EXECUTE FUNCTION public.fn_admission_entry_immutable();
ALTER TABLE public.birth_admission_entry ENABLE ALWAYS TRIGGER trg_admission_entry_immutable;
ALTER TABLE public.birth_admission_entry ENABLE ALWAYS TRIGGER trg_admission_entry_no_truncate;

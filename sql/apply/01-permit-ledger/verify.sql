-- KB-7D57 step 1 holds: the permit table with its 7-state CHECK, uq_permit_idem, uq_permit_active
-- (partial, on the composite), the transition log and the transition function.
WITH c AS (
  SELECT
    to_regclass('public.birth_admission_permit') IS NOT NULL AS has_table,
    to_regclass('public.birth_admission_permit_transition') IS NOT NULL AS has_log,
    EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = 'public' AND indexname = 'uq_permit_idem'
              AND indexdef LIKE 'CREATE UNIQUE INDEX%(idempotency_key)') AS has_idem,
    EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = 'public' AND indexname = 'uq_permit_active'
              AND indexdef LIKE 'CREATE UNIQUE INDEX%(entity_code, collection_name) WHERE%') AS has_active,
    EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'birth_admission_permit_state_check'
              AND pg_get_constraintdef(oid) LIKE '%CANCELLED%') AS has_check,
    to_regprocedure('public.fn_permit_transition(bigint,text,text,text)') IS NOT NULL AS has_fn,
    to_regprocedure('public.fn_permit_issue(text,text,text,integer,text,text,text)') IS NOT NULL AS has_issue,
    to_regprocedure('public.fn_permit_request(text,text,text,integer,text,text,text)') IS NOT NULL AS has_request
)
SELECT (has_table AND has_log AND has_idem AND has_active AND has_check AND has_fn AND has_issue AND has_request) AS ok,
       format('table=%s log=%s uq_permit_idem=%s uq_permit_active=%s state_check=%s fn_permit_transition=%s fn_permit_issue=%s fn_permit_request=%s',
              has_table, has_log, has_idem, has_active, has_check, has_fn, has_issue, has_request) AS detail
FROM c;

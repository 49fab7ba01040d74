-- KB-7D57 step 6 leaves no state to find, so its verify re-checks what the smoke test relied on: the
-- composite constraint (step 3) and both patched conflict targets (steps 4, 5). meta.json
-- "selfUndoing": true tells a runner the up.sql may always be re-run.
SELECT (EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'public.birth_registry'::regclass
                  AND conname = 'birth_registry_code_collection_uq')
        AND (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'public' AND p.proname IN ('fn_birth_registry_auto', 'fn_birth_registry_auto_id')
                AND pg_get_functiondef(p.oid) LIKE '%ON CONFLICT (entity_code, collection_name)%') = 2) AS ok,
       'smoke test is self-undoing; verified its preconditions (composite constraint + both patched functions)' AS detail;

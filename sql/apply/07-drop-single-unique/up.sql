-- KB-7D57 step 7: drop the structural defect UNIQUE(entity_code) (KB-2590 §2). ⚠ ONE-WAY DOOR
-- (KB-3A66 §5): reversible only until a code is born in a second collection, which step 8 does.
-- KB-7D57: "Stop and get explicit owner sign-off between step 6 and step 7". The runner records the
-- approval in its ledger and announces it to this transaction with
--   SELECT set_config('birthgate.approval_owner', $1, true), set_config('birthgate.approval_id', $2, true);
-- so this file refuses on its own (BG428) when run without one, by a runner or by hand.
DO $$
BEGIN
  IF coalesce(btrim(current_setting('birthgate.approval_owner', true)), '') = ''
     OR coalesce(btrim(current_setting('birthgate.approval_id', true)), '') = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = 'step 7 (drop birth_registry_entity_code_unique) is a one-way door and needs an owner approval',
      HINT = 'set birthgate.approval_owner and birthgate.approval_id in this transaction (birthgate apply --owner NAME --approval ID)';
  END IF;
END;
$$;

ALTER TABLE birth_registry DROP CONSTRAINT IF EXISTS birth_registry_entity_code_unique;
-- A rollback stopped between its two parts (down-concurrently.sql built the index, down.sql did not
-- promote it, and the runner could not drop it again) leaves the index without its constraint: it
-- still enforces UNIQUE(entity_code), so the up removes it too. Catalog-only, under the lock the
-- DROP CONSTRAINT above already holds; a no-op otherwise.
DROP INDEX IF EXISTS public.birth_registry_entity_code_unique;

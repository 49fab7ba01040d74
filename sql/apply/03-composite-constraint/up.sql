-- KB-7D57 step 3: promote the step-2 index to the constraint. USING INDEX reuses the built index,
-- so the ACCESS EXCLUSIVE lock lasts only for the catalog update ("brief lock").
ALTER TABLE birth_registry
  ADD CONSTRAINT birth_registry_code_collection_uq UNIQUE USING INDEX birth_registry_code_collection_uq;

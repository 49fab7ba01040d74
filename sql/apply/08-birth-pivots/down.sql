-- KB-7D57 step 8 rollback: "DELETE FROM birth_registry WHERE entity_code IN (…) AND
-- collection_name='pivot_definitions'" — exactly the 5 pivot births, nothing in other collections.
DELETE FROM birth_registry
 WHERE entity_code IN ('PIV-101', 'PIV-103', 'PIV-104', 'PIV-105', 'PIV-106')
   AND collection_name = 'pivot_definitions';

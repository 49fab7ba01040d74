-- KB-7D57 step 8 holds: every one of the 5 pivots present in pivot_definitions is born there.
SELECT count(*) FILTER (WHERE b.id IS NULL) = 0 AS ok,
       format('%s of %s pivot rows born in pivot_definitions', count(b.id), count(*)) AS detail
  FROM pivot_definitions p
  LEFT JOIN birth_registry b ON b.entity_code = p.code AND b.collection_name = 'pivot_definitions'
 WHERE p.code IN ('PIV-101', 'PIV-103', 'PIV-104', 'PIV-105', 'PIV-106');

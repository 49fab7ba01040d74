-- The raw catalog rows of everything in schema public (and every schema and event trigger), one md5
-- per catalog: the rehearsal's "byte for byte" proof beside the fingerprint. OIDs are included, so a
-- dropped-and-recreated object differs even when its definition is the same.
-- Left out of pg_class: relpages, reltuples, relallvisible, relfrozenxid, relminmxid — statistics
-- that VACUUM/ANALYZE and index builds update in place (non-transactionally), so a rolled-back
-- CREATE INDEX or an autovacuum moves them without changing any definition.
WITH rels AS (
  SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
), rows AS (
  SELECT 'pg_namespace' AS catalog, n::text AS r FROM pg_namespace n
  UNION ALL
  SELECT 'pg_class', (to_jsonb(c) - ARRAY['relpages', 'reltuples', 'relallvisible', 'relfrozenxid', 'relminmxid'])::text
    FROM pg_class c WHERE c.oid IN (SELECT oid FROM rels)
  UNION ALL
  SELECT 'pg_attribute', a::text FROM pg_attribute a WHERE a.attrelid IN (SELECT oid FROM rels)
  UNION ALL
  SELECT 'pg_attrdef', d::text FROM pg_attrdef d WHERE d.adrelid IN (SELECT oid FROM rels)
  UNION ALL
  SELECT 'pg_constraint', k::text FROM pg_constraint k WHERE k.connamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'pg_index', i::text FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM rels)
  UNION ALL
  SELECT 'pg_trigger', t::text FROM pg_trigger t WHERE t.tgrelid IN (SELECT oid FROM rels)
  UNION ALL
  SELECT 'pg_proc', p::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'pg_type', y::text FROM pg_type y WHERE y.typnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'pg_rewrite', w::text FROM pg_rewrite w WHERE w.ev_class IN (SELECT oid FROM rels)
  UNION ALL
  SELECT 'pg_sequence', s::text FROM pg_sequence s WHERE s.seqrelid IN (SELECT oid FROM rels)
  UNION ALL
  SELECT 'pg_event_trigger', e::text FROM pg_event_trigger e
)
SELECT catalog, count(*)::integer AS rows, md5(string_agg(r, E'\n' ORDER BY r)) AS md5
  FROM rows GROUP BY catalog ORDER BY catalog;

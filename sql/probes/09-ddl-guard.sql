-- KB-2590 §9: the DDL-guard event triggers already live in this database.
SELECT coalesce(jsonb_agg(jsonb_build_object(
         'name', e.evtname,
         'event', e.evtevent,
         'enabled', e.evtenabled::text,
         'function', e.evtfoid::regproc::text,
         'tags', to_jsonb(e.evttags)) ORDER BY e.evtname), '[]'::jsonb) AS doc
  FROM pg_event_trigger e
 WHERE e.evtfoid IN (SELECT p.oid FROM pg_proc p WHERE p.prosrc LIKE '%[TRIGGER-GUARD]%');

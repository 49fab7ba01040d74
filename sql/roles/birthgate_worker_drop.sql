-- Counterpart of birthgate_worker.sql: revoke everything the worker holds in this database, then
-- drop the role if no other database still grants it something (roles are cluster-global; another
-- test database may still use it, in which case the role is kept and a NOTICE says so).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'birthgate_worker') THEN
    RETURN;
  END IF;
  -- DROP OWNED revokes this database's grants (the role owns nothing by design), and the role's grants
  -- on shared objects (CONNECT on every database) too: serialise with CREATE/DROP DATABASE elsewhere on
  -- the cluster, which would otherwise race it ("tuple concurrently deleted").
  LOCK TABLE pg_catalog.pg_database IN SHARE ROW EXCLUSIVE MODE;
  DROP OWNED BY birthgate_worker;
  EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM birthgate_worker', current_database());
  BEGIN
    LOCK TABLE pg_catalog.pg_authid IN SHARE ROW EXCLUSIVE MODE;
    DROP ROLE birthgate_worker;
  EXCEPTION WHEN dependent_objects_still_exist OR object_in_use THEN
    RAISE NOTICE 'birthgate_worker kept: it still holds privileges in another database or has sessions';
  END;
END
$$;

-- KB-2590 §2, §5: the estate is owned by `directus`. Roles are cluster-global, so the role is created
-- only when missing; a concurrent creator (parallel test databases on one cluster) is tolerated.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'directus') THEN
    BEGIN
      CREATE ROLE directus NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END IF;
END
$$;
